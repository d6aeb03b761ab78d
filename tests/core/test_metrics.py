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


# --- Volumes: HD95 and volume error, against hand-computed values and a brute-force computation.


def _surface_points(mask: np.ndarray, spacing) -> np.ndarray:
    """Coordinates in mm of the voxels of `mask` with a face neighbour outside it (volume border included)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~inner) * np.asarray(spacing)


def _brute_force_hd95(truth: np.ndarray, prediction: np.ndarray, spacing) -> float:
    from scipy.spatial.distance import cdist

    distances = cdist(_surface_points(truth, spacing), _surface_points(prediction, spacing))
    return float(max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95)))


def test_hd95_of_two_single_voxels_is_their_distance_in_mm():
    truth = np.zeros((5, 6, 7), bool)
    prediction = np.zeros_like(truth)
    truth[1, 1, 1] = True
    prediction[4, 1, 3] = True
    spacing = (0.5, 1.0, 2.5)
    assert metrics.hausdorff95_mm(truth, prediction, spacing) == pytest.approx(np.hypot(3 * 0.5, 2 * 2.5))
    assert metrics.hausdorff95_mm(truth, truth, spacing) == 0.0


def test_hd95_and_volume_error_match_a_brute_force_computation_on_anisotropic_blobs():
    rng = np.random.default_rng(3)
    for _ in range(5):
        truth = rng.random((14, 12, 9)) < 0.15
        prediction = rng.random((14, 12, 9)) < 0.1
        truth[4:10, 3:9, 2:6] = True
        prediction[5:11, 3:8, 3:7] = True
        spacing = tuple(rng.uniform(0.4, 3.0, 3))
        assert metrics.hausdorff95_mm(truth, prediction, spacing) == pytest.approx(_brute_force_hd95(truth, prediction, spacing))
        voxel_ml = np.prod(spacing) / 1000
        assert metrics.volume_error_ml(truth, prediction, spacing) == pytest.approx(
            abs(int(prediction.sum()) - int(truth.sum())) * voxel_ml
        )


def test_empty_mask_conventions_for_hd95_and_volume_error():
    empty = np.zeros((4, 5, 6), np.uint8)
    one = empty.copy()
    one[2, 2, 2] = 1
    spacing = (1.0, 2.0, 3.0)
    diagonal = np.linalg.norm([4 * 1.0, 5 * 2.0, 6 * 3.0])
    assert np.isnan(metrics.hausdorff95_mm(empty, empty, spacing))
    assert metrics.hausdorff95_mm(one, empty, spacing) == pytest.approx(diagonal)  # a missed tumor
    assert metrics.hausdorff95_mm(empty, one, spacing) == pytest.approx(diagonal)  # a false alarm
    assert metrics.volume_error_ml(empty, empty, spacing) == 0.0
    assert metrics.volume_error_ml(one, empty, spacing) == pytest.approx(6.0 / 1000)
    assert metrics.volume_ml(one, spacing) == pytest.approx(0.006)
    with pytest.raises(ValueError, match="spacing_mm"):
        metrics.volume_ml(one, (1.0, 0.0, 1.0))


def test_volume_summary_leaves_out_patients_without_tumor():
    tumor = np.zeros((4, 4, 4), np.uint8)
    tumor[1:3, 1:3, 1:3] = 1
    empty = np.zeros_like(tumor)
    rows = [
        metrics.volume_metrics(tumor, tumor, (1, 1, 1), "perfect"),
        metrics.volume_metrics(tumor, empty, (1, 1, 1), "missed"),
        metrics.volume_metrics(empty, tumor, (1, 1, 1), "false alarm"),
    ]
    summary = metrics.summarize_volumes(rows)
    assert set(summary) == set(metrics.VOLUME_METRIC_KEYS)
    assert summary["dice_per_patient_mean"] == pytest.approx(0.5)
    assert summary["hd95_mm_mean"] == pytest.approx(np.linalg.norm([4, 4, 4]) / 2)
    assert summary["volume_error_ml_mean"] == pytest.approx(0.008 / 2)
