"""The blessing gates of `pipeline.eval_config`: the thresholds it writes, and what TFMA decides with them."""

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_types

from components import tfma_metrics
from core import metrics
from pipeline import pipeline
from pipeline.config import PipelineConfig, testing_pipeline_config
from tests.helpers import tfma_metric_inputs

SMALL_SLICE = (("tumor_size_bucket", "small"),)
OVERALL = ()


def _eval_config(small_tumor_guard: bool = True, **overrides) -> tfma.EvalConfig:
    values = dict(min_tumor_slice_dice=0.6, max_dice_regression=0.02, small_tumor_guard=small_tumor_guard)
    values.update(overrides)
    return pipeline.eval_config(testing_pipeline_config("data", "out", **values))


def _thresholds(eval_config: tfma.EvalConfig, metric: str = "dice_per_tumor_slice_mean") -> list[tuple]:
    """(slices, kind, direction or bound, value) of every threshold on `metric`, slices as feature_values dicts."""
    [metrics_spec] = eval_config.metrics_specs
    rows = []
    for per_slice in metrics_spec.per_slice_thresholds[metric].thresholds:
        slices = [dict(spec.feature_values) for spec in per_slice.slicing_specs]
        threshold = per_slice.threshold
        if threshold.HasField("value_threshold"):
            for bound in ("lower_bound", "upper_bound"):
                if threshold.value_threshold.HasField(bound):
                    rows.append((slices, "value", bound, pytest.approx(getattr(threshold.value_threshold, bound).value)))
        if threshold.HasField("change_threshold"):
            change = threshold.change_threshold
            assert not change.HasField("relative")
            rows.append((slices, "change", tfma.MetricDirection.Name(change.direction), pytest.approx(change.absolute.value)))
    return rows


def test_floor_is_overall_and_the_regression_guard_covers_small_tumors():
    assert _thresholds(_eval_config(small_tumor_guard=True)) == [
        ([{}], "value", "lower_bound", 0.6),
        ([{}, {"tumor_size_bucket": "small"}], "change", "HIGHER_IS_BETTER", -0.02),
    ]


def test_without_the_small_tumor_guard_only_the_overall_change_is_checked():
    assert _thresholds(_eval_config(small_tumor_guard=False)) == [
        ([{}], "value", "lower_bound", 0.6),
        ([{}], "change", "HIGHER_IS_BETTER", -0.02),
    ]


def _blessed(eval_config: tfma.EvalConfig, slice_key, dice: float, change: float | None = None) -> bool:
    """TFMA's verdict on a tumor-slice Dice (and its change) of one slice, the other gated metrics passing."""
    values = {"dice_per_tumor_slice_mean": dice, "dice_per_patient_mean": 1.0, "empty_slice_fp_rate": 0.0}
    changes = None if change is None else {"dice_per_tumor_slice_mean": change, "dice_per_patient_mean": 0.0, "empty_slice_fp_rate": 0.0}
    return _validate(eval_config, slice_key, values, changes)


def _validate(eval_config: tfma.EvalConfig, slice_key, values: dict[str, float], changes: dict[str, float] | None = None) -> bool:
    """TFMA's own threshold check on metric values of one slice, as TFX's Evaluator runs it.

    changes: candidate minus served model, per metric (None: nothing served
    yet, as TFX's Evaluator runs without a baseline and with rubber_stamp).
    """
    has_baseline = changes is not None
    config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=has_baseline, rubber_stamp=True)
    candidate = tfma.CANDIDATE_KEY if has_baseline else ""
    keyed = {}
    for name, value in values.items():
        keyed[metric_types.MetricKey(name=name, model_name=candidate, example_weighted=None)] = value
        if has_baseline:
            keyed[metric_types.MetricKey(name=name, model_name=candidate, is_diff=True, example_weighted=None)] = changes[name]
            keyed[metric_types.MetricKey(name=name, model_name=tfma.BASELINE_KEY, example_weighted=None)] = value - changes[name]
    return metrics_validator.validate_metrics((slice_key, keyed), config).validation_ok


@pytest.mark.parametrize(
    "slice_key, dice, change, blessed",
    [
        (OVERALL, 0.61, None, True),
        (OVERALL, 0.6, None, True),  # the floor is inclusive
        (OVERALL, 0.59, None, False),  # below the floor
        (OVERALL, 0.59, 0.1, False),  # the floor holds with a served model too
        (OVERALL, 0.7, -0.02, True),  # exactly the allowed regression
        (OVERALL, 0.7, -0.03, False),  # more than the allowed regression
        (OVERALL, 0.7, 0.05, True),
        (SMALL_SLICE, 0.1, 0.0, True),  # the floor is overall only
        (SMALL_SLICE, 0.1, -0.03, False),  # a small-tumor regression blocks the blessing
    ],
)
def test_tfma_blesses_by_floor_and_regression(slice_key, dice, change, blessed):
    assert _blessed(_eval_config(small_tumor_guard=True), slice_key, dice, change) is blessed


def test_without_the_guard_a_small_tumor_regression_is_blessed():
    assert _blessed(_eval_config(small_tumor_guard=False), SMALL_SLICE, 0.1, -0.03) is True
    assert _blessed(_eval_config(small_tumor_guard=False), OVERALL, 0.7, -0.03) is False


def test_patient_dice_and_empty_slice_gates():
    config = _eval_config(min_patient_dice=0.7, max_empty_slice_fp_rate=0.15, max_fp_rate_regression=0.05)
    assert _thresholds(config, "dice_per_patient_mean") == [
        ([{}], "value", "lower_bound", 0.7),
        ([{}], "change", "HIGHER_IS_BETTER", -0.02),  # the same tolerance as the tumor-slice Dice
    ]
    assert _thresholds(config, "empty_slice_fp_rate") == [
        ([{}], "value", "upper_bound", 0.15),
        ([{}], "change", "LOWER_IS_BETTER", 0.05),
    ]
    assert set(config.metrics_specs[0].per_slice_thresholds) <= set(metrics.METRIC_KEYS)


def test_off_removes_the_empty_slice_gates():
    config = _eval_config(max_empty_slice_fp_rate=None, max_fp_rate_regression=None)
    assert "empty_slice_fp_rate" not in config.metrics_specs[0].per_slice_thresholds
    assert _thresholds(_eval_config(max_empty_slice_fp_rate=None, max_fp_rate_regression=0.0), "empty_slice_fp_rate") == [
        ([{}], "change", "LOWER_IS_BETTER", 0.0)
    ]


GOOD = {"dice_per_tumor_slice_mean": 0.8, "dice_per_patient_mean": 0.85, "empty_slice_fp_rate": 0.05}


@pytest.mark.parametrize(
    "values, changes, blessed",
    [
        (GOOD, None, True),
        ({**GOOD, "dice_per_patient_mean": 0.69}, None, False),  # below the patient-Dice floor
        ({**GOOD, "empty_slice_fp_rate": 0.15}, None, True),  # the ceiling is inclusive
        ({**GOOD, "empty_slice_fp_rate": 0.16}, None, False),  # above the ceiling
        ({**GOOD, "empty_slice_fp_rate": math.nan}, None, False),  # TFMA fails NaN: no tumor-free test slice
        (GOOD, {"dice_per_tumor_slice_mean": 0.0, "dice_per_patient_mean": -0.02, "empty_slice_fp_rate": 0.0}, True),
        (GOOD, {"dice_per_tumor_slice_mean": 0.0, "dice_per_patient_mean": -0.03, "empty_slice_fp_rate": 0.0}, False),
        (GOOD, {"dice_per_tumor_slice_mean": 0.1, "dice_per_patient_mean": 0.1, "empty_slice_fp_rate": 0.01}, False),  # more FP
        (GOOD, {"dice_per_tumor_slice_mean": 0.0, "dice_per_patient_mean": 0.0, "empty_slice_fp_rate": -0.1}, True),  # fewer FP
    ],
)
def test_tfma_blesses_by_patient_dice_and_empty_slice_gates(values, changes, blessed):
    config = _eval_config(min_patient_dice=0.7, max_empty_slice_fp_rate=0.15, max_fp_rate_regression=0.0)
    assert _validate(config, OVERALL, values, changes) is blessed


def _evaluator_metrics(predict_healthy: float) -> dict[str, float]:
    """The Evaluator's metric (components.tfma_metrics) on four test patients of ten 8x8 slices, three with tumor.

    Each model finds 3/4 of every tumor; predict_healthy: the probability it gives every pixel
    of the tumor-free slices (> 0.5: tumor painted over them).
    """
    combiner = tfma_metrics.SegmentationMetrics().computations()[0].combiner
    accumulator = combiner.create_accumulator()
    for patient in "ABCD":
        for index in range(10):
            truth = np.zeros((8, 8), np.uint8)
            probabilities = np.full((8, 8), predict_healthy, np.float32)
            if index in (4, 5, 6):
                truth[2:6, 2:6] = 1
                probabilities[:] = 0.0
                probabilities[2:5, 2:6] = 0.9
            accumulator = combiner.add_input(accumulator, tfma_metric_inputs(patient, index, truth, probabilities))
    return {key.name: value for key, value in combiner.extract_output(accumulator).items()}


def test_a_model_that_paints_healthy_slices_is_not_blessed():
    """With the default gates: same tumor slices, but tumor on every pixel of the healthy slices.

    Its tumor-slice Dice (0.857) passes the tumor-slice floor, which alone would bless it; the
    per-patient Dice and the empty-slice false-positive rate refuse it; the careful model passes.
    """
    careful, painter = _evaluator_metrics(predict_healthy=0.1), _evaluator_metrics(predict_healthy=0.9)
    assert careful["dice_per_tumor_slice_mean"] == painter["dice_per_tumor_slice_mean"] == pytest.approx(2 * 12 / (16 + 12))
    # Per patient: 3 tumor slices of 16 pixels, 12 of them found; the painter adds 7 slices x 64 pixels.
    assert careful["dice_per_patient_mean"] == pytest.approx(2 * 36 / (48 + 36)) and careful["empty_slice_fp_rate"] == 0.0
    assert painter["dice_per_patient_mean"] == pytest.approx(2 * 36 / (48 + 36 + 7 * 64)) and painter["empty_slice_fp_rate"] == 1.0
    defaults = pipeline.eval_config(PipelineConfig(data_dir="data", output_dir="out"))
    assert _validate(defaults, OVERALL, careful) is True
    assert _validate(defaults, OVERALL, painter) is False
    tumor_slice_gates_only = pipeline.eval_config(
        PipelineConfig(data_dir="data", output_dir="out", min_patient_dice=0.0, max_empty_slice_fp_rate=None, max_fp_rate_regression=None)
    )
    assert _validate(tumor_slice_gates_only, OVERALL, painter) is True
    for each_gate_alone in (dict(max_empty_slice_fp_rate=None), dict(min_patient_dice=0.0)):  # either new floor refuses it
        alone = pipeline.eval_config(PipelineConfig(data_dir="data", output_dir="out", max_fp_rate_regression=None, **each_gate_alone))
        assert _validate(alone, OVERALL, painter) is False
    # Once the careful model is served, a painter is refused by the comparison too, even when it passes the floors.
    no_floors = pipeline.eval_config(PipelineConfig(data_dir="data", output_dir="out", min_patient_dice=0.0, max_empty_slice_fp_rate=None))
    changes = {name: painter[name] - careful[name] for name in painter}
    assert _validate(no_floors, OVERALL, painter, changes) is False
    assert _validate(no_floors, OVERALL, careful, {name: 0.0 for name in careful}) is True


@pytest.mark.parametrize("name", ["min_patient_dice", "max_empty_slice_fp_rate", "max_fp_rate_regression"])
def test_gate_options_outside_0_1_name_the_value(name):
    with pytest.raises(ValueError, match=f"{name} must be in \\[0, 1\\], got 1.5"):
        PipelineConfig(data_dir="data", output_dir="out", **{name: 1.5})
