import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import metrics


def masks(*rows):
    return np.array(rows, dtype=np.uint8)


def test_dice_and_iou_on_a_hand_computed_3x3_case():
    truth = masks([1, 1, 0], [1, 0, 0], [0, 0, 0])  # 3 pixels
    pred = masks([1, 0, 0], [1, 1, 0], [0, 0, 1])  # 4 pixels, 2 shared
    counts = metrics.slice_counts(truth, pred)
    assert (counts.truth_pixels, counts.pred_pixels, counts.intersection) == (3, 4, 2)
    assert counts.dice == pytest.approx(4 / 7)
    assert counts.iou == pytest.approx(2 / 5)


def test_probabilities_are_thresholded_strictly_above_one_half():
    truth = masks([1, 1, 0])
    probabilities = np.array([[0.9, 0.5, 0.51]], dtype=np.float32)
    counts = metrics.slice_counts(truth, probabilities)
    assert (counts.pred_pixels, counts.intersection) == (2, 1)


def test_both_empty_is_nan_not_one():
    counts = metrics.slice_counts(np.zeros((3, 3)), np.zeros((3, 3)))
    assert math.isnan(counts.dice) and math.isnan(counts.iou)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        metrics.slice_counts(np.zeros((3, 3)), np.zeros((3, 4)))


def test_summarize_hand_computed():
    slices = [
        metrics.SliceCounts("A", 1, truth_pixels=4, pred_pixels=4, intersection=4),  # Dice 1
        metrics.SliceCounts("A", 2, truth_pixels=4, pred_pixels=0, intersection=0),  # Dice 0, missed
        metrics.SliceCounts("A", 3, truth_pixels=0, pred_pixels=0, intersection=0),  # empty, correct
        metrics.SliceCounts("B", 1, truth_pixels=2, pred_pixels=6, intersection=2),  # Dice 0.5
        metrics.SliceCounts("B", 2, truth_pixels=0, pred_pixels=3, intersection=0),  # false positive
    ]
    result = metrics.summarize(slices)
    assert set(result) == set(metrics.METRIC_KEYS)
    assert result["dice_per_tumor_slice_mean"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert result["iou_per_tumor_slice_mean"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    # Pooled: 2 * (4 + 2) / ((4 + 4 + 2) + (4 + 6 + 3)) = 12 / 23
    assert result["dice_pooled"] == pytest.approx(12 / 23)
    # Patient A: 2*4 / (8 + 4) = 2/3; patient B: 2*2 / (2 + 9) = 4/11
    assert result["dice_per_patient_mean"] == pytest.approx((2 / 3 + 4 / 11) / 2)
    assert result["dice_per_patient_median"] == pytest.approx((2 / 3 + 4 / 11) / 2)
    assert result["tumor_slice_detection_rate"] == pytest.approx(2 / 3)
    assert result["empty_slice_fp_rate"] == pytest.approx(1 / 2)


def test_empty_truth_slices_never_enter_tumor_slice_means():
    perfect = metrics.SliceCounts("A", 1, truth_pixels=4, pred_pixels=4, intersection=2)
    empties = [metrics.SliceCounts("A", i, 0, 0, 0) for i in range(2, 20)]
    assert metrics.summarize([perfect, *empties])["dice_per_tumor_slice_mean"] == pytest.approx(0.5)


def test_patient_without_tumor_is_left_out_of_patient_dice():
    slices = [metrics.SliceCounts("A", 1, 4, 4, 4), metrics.SliceCounts("B", 1, 0, 5, 0)]
    result = metrics.summarize(slices)
    assert result["dice_per_patient_mean"] == pytest.approx(1.0)
    assert result["empty_slice_fp_rate"] == pytest.approx(1.0)


def test_nothing_to_average_is_nan():
    result = metrics.summarize([metrics.SliceCounts("A", 1, 0, 0, 0)])
    assert math.isnan(result["dice_per_tumor_slice_mean"])
    assert math.isnan(result["dice_per_patient_mean"])
    assert result["empty_slice_fp_rate"] == 0.0


mask_pairs = st.integers(1, 8).flatmap(
    lambda n: st.tuples(hnp.arrays(np.uint8, (n, n), elements=st.integers(0, 1)), hnp.arrays(np.uint8, (n, n), elements=st.integers(0, 1)))
)


@settings(max_examples=200, deadline=None)
@given(mask_pairs)
def test_iou_equals_dice_over_two_minus_dice_and_never_exceeds_it(pair):
    counts = metrics.slice_counts(*pair)
    if counts.truth_pixels + counts.pred_pixels == 0:
        return
    assert counts.iou == pytest.approx(counts.dice / (2 - counts.dice))
    assert counts.iou <= counts.dice + 1e-12
    assert 0.0 <= counts.iou <= 1.0
