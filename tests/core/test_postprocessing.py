"""The post-processing definition (numpy) and its choice on eval slices, on hand-made masks."""

import math

import numpy as np
import pytest

from core.postprocessing import CRITERION, MIN_GAIN, EvalSlice, PostProcessing, apply, choose, remove_small_components


def test_threshold_is_strict_and_components_are_8_connected():
    probabilities = np.array(
        [
            [0.9, 0.0, 0.0, 0.0, 0.6],
            [0.0, 0.8, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.5, 0.0, 0.7],
        ],
        np.float32,
    )
    # > 0.5: a diagonal pair (one 8-connected component of 2) and two single pixels; 0.5 itself is not tumor.
    assert apply(probabilities, PostProcessing(0.5, 0)).sum() == 4
    kept = apply(probabilities, PostProcessing(0.5, 2))
    np.testing.assert_array_equal(np.argwhere(kept), [[0, 0], [1, 1]])
    assert kept.dtype == np.uint8
    assert apply(probabilities, PostProcessing(0.5, 3)).sum() == 0


def test_components_are_counted_per_slice_not_across_slices():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 1:3, 1:3] = True  # 4 pixels
    masks[1, 1:3, 1:3] = True  # the same place on the next slice: still 4, not 8
    assert not remove_small_components(masks, 5).any()
    np.testing.assert_array_equal(remove_small_components(masks, 4), masks)


def test_json_form_round_trips_and_old_models_get_the_default():
    spec = PostProcessing(0.35, 25)
    assert spec.to_dict() == {"threshold": 0.35, "min_component_pixels": 25}
    assert PostProcessing.from_dict(spec.to_dict()) == spec
    assert PostProcessing.from_dict(None) == PostProcessing.from_dict({}) == PostProcessing(0.5, 0)
    assert "25 px" in spec.describe() and PostProcessing().describe() == "probability > 0.5"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"threshold": 1.0}, "threshold must be in"),
        ({"threshold": 0.0}, "threshold must be in"),
        ({"min_component_pixels": -1}, "min_component_pixels must be"),
        ({"min_component_pixels": 2.5}, "min_component_pixels must be"),
        ({"min_size": 3}, "unknown post-processing keys"),
    ],
)
def test_bad_values_are_refused_with_their_name(values, message):
    with pytest.raises(ValueError, match=message):
        PostProcessing.from_dict(values)


def _slice(case_id: str, index: int, truth_box=None, probability_boxes=()) -> EvalSlice:
    truth = np.zeros((20, 20), bool)
    if truth_box:
        truth[truth_box] = True
    probabilities = np.zeros((20, 20), np.float32)
    for box, value in probability_boxes:
        probabilities[box] = value
    return EvalSlice(case_id, index, truth, probabilities)


def test_a_threshold_is_adopted_only_when_it_improves_the_patients_dice():
    # The tumor is predicted at 0.45 on half its pixels: thresholds 0.3 and 0.4 both recover it; 0.4 is closer to 0.5.
    slices = [_slice("A", 0, np.s_[5:10, 5:10], [(np.s_[5:10, 5:10], 0.45), (np.s_[5:10, 5:8], 0.9)])]
    choice = choose(slices)
    assert choice.spec == PostProcessing(0.4, 0)
    assert choice.before[CRITERION] == pytest.approx(2 * 15 / (25 + 15)) and choice.after[CRITERION] == 1.0


def test_a_minimum_size_is_adopted_when_it_removes_false_positives():
    slices = [
        _slice("A", 0, np.s_[2:12, 2:12], [(np.s_[2:12, 2:12], 0.9)]),  # 100 pixels, found
        _slice("A", 1, None, [(np.s_[0:3, 0:3], 0.9)]),  # a 9-pixel false positive on an empty slice
    ]
    choice = choose(slices, min_component_pixels=(0, 5, 10, 200))
    assert choice.spec == PostProcessing(0.5, 10)  # 200 would remove the tumor too
    assert choice.before[CRITERION] == pytest.approx(200 / 209) and choice.after[CRITERION] == 1.0
    assert choice.after["empty_slice_fp_rate"] == 0.0 and choice.before["empty_slice_fp_rate"] == 1.0
    tried = {(row["threshold"], row["min_component_pixels"]) for row in choice.grid}
    assert {(0.5, 0), (0.5, 5), (0.5, 10), (0.5, 200), (0.3, 0), (0.8, 0)} <= tried


def test_a_step_that_gains_less_than_min_gain_is_not_adopted():
    truth = np.zeros((60, 60), bool)
    truth[10:40, 10:40] = True  # 900 pixels, found
    probabilities = np.where(truth, 0.9, 0.0).astype(np.float32)
    probabilities[50:52, 50:52] = 0.9  # a 4-pixel false positive beside it
    slices = [EvalSlice("A", 0, truth, probabilities)]
    gain = 1.0 - 2 * 900 / (900 + 904)  # removing the speck: Dice 0.9978 -> 1
    assert gain < MIN_GAIN
    assert choose(slices).spec == PostProcessing()
    assert choose(slices, min_gain=0.0).spec == PostProcessing(0.5, 10)
    assert choose(slices, min_gain=gain / 2).spec == PostProcessing(0.5, 10)


def test_ties_and_no_tumor_keep_the_default():
    perfect = [_slice("A", 0, np.s_[2:12, 2:12], [(np.s_[2:12, 2:12], 0.9)])]
    assert choose(perfect).spec == PostProcessing()  # every threshold and size up to 100 ties at Dice 1
    no_tumor = [_slice("A", 0, None, [(np.s_[0:2, 0:2], 0.9)])]
    choice = choose(no_tumor)
    assert choice.spec == PostProcessing() and math.isnan(choice.before[CRITERION])
    assert choice.to_dict()["before"][CRITERION] is None  # JSON-safe
