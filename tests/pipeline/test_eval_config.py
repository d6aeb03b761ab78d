"""The blessing gates of `pipeline.eval_config`: the thresholds it writes, and what TFMA decides with them."""

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_types

from pipeline import pipeline
from pipeline.config import testing_pipeline_config

SMALL_SLICE = (("tumor_size_bucket", "small"),)
OVERALL = ()


def _eval_config(small_tumor_guard: bool) -> tfma.EvalConfig:
    config = testing_pipeline_config("data", "out", min_tumor_slice_dice=0.6, max_dice_regression=0.02, small_tumor_guard=small_tumor_guard)
    return pipeline.eval_config(config)


def _thresholds(eval_config: tfma.EvalConfig) -> list[tuple]:
    """(slices, kind, direction, value) of every threshold on the blessing metric, slices as feature_values dicts."""
    [metrics_spec] = eval_config.metrics_specs
    rows = []
    for per_slice in metrics_spec.per_slice_thresholds["dice_per_tumor_slice_mean"].thresholds:
        slices = [dict(spec.feature_values) for spec in per_slice.slicing_specs]
        threshold = per_slice.threshold
        if threshold.HasField("value_threshold"):
            assert not threshold.value_threshold.HasField("upper_bound")
            rows.append((slices, "value", "lower_bound", pytest.approx(threshold.value_threshold.lower_bound.value)))
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
    """TFMA's own threshold check on hand-made metric values of one slice.

    change: candidate minus served model (None: nothing served yet, as TFX's
    Evaluator runs without a baseline and with rubber_stamp).
    """
    name = pipeline.BLESSING_METRIC
    has_baseline = change is not None
    config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=has_baseline, rubber_stamp=True)
    candidate = tfma.CANDIDATE_KEY if has_baseline else ""
    values = {metric_types.MetricKey(name=name, model_name=candidate, example_weighted=None): dice}
    if has_baseline:
        values[metric_types.MetricKey(name=name, model_name=candidate, is_diff=True, example_weighted=None)] = change
        values[metric_types.MetricKey(name=name, model_name=tfma.BASELINE_KEY, example_weighted=None)] = dice - change
    return metrics_validator.validate_metrics((slice_key, values), config).validation_ok


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
