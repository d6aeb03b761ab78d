import numpy as np
import pytest

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


def test_counts_from_inputs_reads_label_bytes_and_case():
    truth = np.array([[1, 0], [1, 1]], np.uint8)
    probabilities = np.array([[0.9, 0.8], [0.1, 0.7]], np.float32)
    counts = tfma_metrics.counts_from_inputs(inputs("P1", 7, truth, probabilities))
    assert counts == metrics.SliceCounts("P1", 7, truth_pixels=3, pred_pixels=3, intersection=2)
