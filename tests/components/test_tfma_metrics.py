import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from components import tfma_metrics
from core import metrics
from tests.helpers import tfma_metric_inputs as inputs

# Five 2x2 slices of three patients; tumor means probability > 0.5 (0.5 itself is not tumor).
# (case, index, truth, probabilities); the comments give the counts by hand: truth (T), predicted (P), intersection (I).
SLICES = [
    ("A", 0, [[1, 1], [0, 0]], [[0.9, 0.2], [0.7, 0.1]]),  # T 2, P 2, I 1: Dice 0.5, IoU 1/3
    ("A", 1, [[0, 0], [0, 0]], [[0.1, 0.1], [0.1, 0.1]]),  # empty, nothing predicted
    ("B", 0, [[1, 1], [1, 0]], [[0.8, 0.6], [0.9, 0.5]]),  # T 3, P 3, I 3: Dice 1, IoU 1
    ("B", 1, [[0, 0], [0, 0]], [[0.51, 0.99], [0.0, 0.0]]),  # empty, two false-positive pixels
    ("C", 0, [[0, 1], [0, 0]], [[0.0, 0.0], [0.0, 0.0]]),  # T 1, P 0: Dice 0, IoU 0, missed
]
EXPECTED = {
    "dice_per_tumor_slice_mean": (0.5 + 1 + 0) / 3,
    "iou_per_tumor_slice_mean": (1 / 3 + 1 + 0) / 3,
    "dice_pooled": 2 * (1 + 3) / ((2 + 3 + 1) + (2 + 3 + 2 + 0)),  # 8 / 13: truth, then predicted pixels
    "tumor_slice_detection_rate": 2 / 3,
    "empty_slice_fp_rate": 1 / 2,
    # 3D Dice per patient: A 2*1/(2+2) = 0.5, B 2*3/(3+5) = 0.75, C 0.
    "dice_per_patient_mean": (0.5 + 0.75 + 0) / 3,
    "dice_per_patient_median": 0.5,
}


def test_combiner_gives_hand_computed_metrics():
    elements = [inputs(case, index, np.array(truth), np.array(probabilities, np.float32)) for case, index, truth, probabilities in SLICES]
    combiner = tfma_metrics.SegmentationMetrics().computations()[0].combiner
    halves = []
    for part in (elements[:2], elements[2:]):  # as Beam would: partial accumulators, then merged
        accumulator = combiner.create_accumulator()
        for element in part:
            accumulator = combiner.add_input(accumulator, element)
        halves.append(accumulator)
    output = combiner.extract_output(combiner.merge_accumulators(halves))
    assert all(key.example_weighted is None for key in output)  # matches the keys TFMA builds for thresholds
    assert {key.name: value for key, value in output.items()} == pytest.approx(EXPECTED)


def test_combiner_without_tumor_or_empty_slices_gives_nan():
    combiner = tfma_metrics.SegmentationMetrics().computations()[0].combiner
    accumulator = combiner.add_input(combiner.create_accumulator(), inputs("A", 0, np.zeros((2, 2)), np.zeros((2, 2), np.float32)))
    output = {key.name: value for key, value in combiner.extract_output(accumulator).items()}
    assert np.isnan(output["dice_per_tumor_slice_mean"]) and np.isnan(output["dice_per_patient_mean"])
    assert output["empty_slice_fp_rate"] == 0.0


def test_counts_follow_the_models_mask_not_its_probabilities():
    """The model's post-processing may drop pixels above 0.5 (a small component) or keep none of them."""
    truth = np.array([[1, 0], [0, 0]], np.uint8)
    element = metric_types.StandardMetricInputs(
        labels=np.array([truth.tobytes()], dtype=object),
        predictions={"probabilities": np.array([[[0.9, 0.9], [0.9, 0.9]]], np.float32), "mask": np.array([[[1, 0], [0, 0]]], np.uint8)},
        features={"case_id": np.array([b"A"], dtype=object), "slice_index": np.array([0])},
    )
    assert tfma_metrics.counts_from_inputs(element) == metrics.SliceCounts("A", 0, truth_pixels=1, pred_pixels=1, intersection=1)


def test_probabilities_in_place_of_the_mask_are_refused():
    element = metric_types.StandardMetricInputs(
        labels=np.array([np.zeros((2, 2), np.uint8).tobytes()], dtype=object),
        predictions=np.array([[[0.9, 0.2], [0.1, 0.7]]], np.float32),  # an eval config naming `probabilities`
        features={"case_id": np.array([b"A"], dtype=object), "slice_index": np.array([0])},
    )
    with pytest.raises(ValueError, match="0/1 `mask` output"):
        tfma_metrics.counts_from_inputs(element)


def test_counts_from_inputs_reads_label_bytes_and_case():
    truth = np.array([[1, 0], [1, 1]], np.uint8)
    probabilities = np.array([[0.9, 0.8], [0.1, 0.7]], np.float32)
    counts = tfma_metrics.counts_from_inputs(inputs("P1", 7, truth, probabilities))
    assert counts == metrics.SliceCounts("P1", 7, truth_pixels=3, pred_pixels=3, intersection=2)


def test_tfma_and_unet4mri_evaluate_agree_on_a_post_processed_model(tiny_dataset, tmp_path):
    """The Evaluator's TFMA run (the pipeline's eval config) and `unet4mri evaluate` score the same
    post-processed masks: the same numbers to 1e-6, with a threshold and a minimum size that change them."""
    import shutil

    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    from core import contracts, postprocessing, slices
    from pipeline import pipeline
    from pipeline.config import testing_pipeline_config
    from tests.helpers import export_red_channel_model, write_examples
    from unet4mri import evaluate
    from unet4mri.served_model import ServedModel

    cases = sorted({pair.case_id for pair in slices.find_slice_pairs(tiny_dataset)})[:2]
    for case in cases:
        shutil.copytree(f"{tiny_dataset}/{case}", tmp_path / "data" / case)
    spec = postprocessing.PostProcessing(threshold=0.7, min_component_pixels=40)
    model = str(tmp_path / "model")
    export_red_channel_model(model, image_size=32, spec=spec)
    pairs = slices.find_slice_pairs(str(tmp_path / "data"))
    predicted = [prediction for _, _, prediction in ServedModel.load(model).predict_pairs(pairs)]
    assert sum(p.mask.sum() != (p.probabilities > 0.5).sum() for p in predicted) > 0  # the post-processing changes masks here
    assert all((p.mask == postprocessing.apply(p.probabilities, spec)).all() for p in predicted)

    config = pipeline.eval_config(testing_pipeline_config("data", "out"))
    for metrics_spec in config.metrics_specs:
        metrics_spec.ClearField("per_slice_thresholds")  # no baseline here: the blessing is not what is compared
    examples = write_examples(str(tmp_path / "data"), str(tmp_path / "examples"))
    result = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(model, eval_config=config),
        eval_config=config,
        data_location=tf.io.gfile.glob(examples)[0],
        output_path=str(tmp_path / "tfma"),
    )
    [overall] = [values[""][""] for slice_key, values in result.slicing_metrics if slice_key == ()]
    overall = {name: value.get("doubleValue", float("nan")) for name, value in overall.items()}
    assert 0 < overall["dice_pooled"] < 1  # numbers, not NaN: both sides have something to score
    ours = evaluate.evaluate_model(model, str(tmp_path / "data"))
    assert ours[contracts.INFO_POSTPROCESSING] == spec.to_dict()
    for key in metrics.METRIC_KEYS:
        assert ours[key] == pytest.approx(overall[key], abs=1e-6, nan_ok=True) or (ours[key] is None and overall[key] != overall[key]), key
