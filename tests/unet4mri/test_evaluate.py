"""`unet4mri evaluate`: the numbers in its JSON, against hand-computed ones."""

import json

import numpy as np
import pytest

from core.metrics import SliceCounts
from tests.conftest import write_pair
from tests.helpers import export_red_channel_model
from unet4mri import cli, evaluate

SIZE = 32


def _slice(truth_box, predicted_box) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of SIZE x SIZE: truth 255 in truth_box, the first channel 255 in predicted_box (rows, columns slices)."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    if truth_box:
        mask[truth_box] = 255
    if predicted_box:
        image[predicted_box + (0,)] = 255
    return image, mask


BOX = np.s_


@pytest.fixture(scope="module")
def known_folder(tmp_path_factory):
    """Three slices of two patients, and a model that predicts exactly the first channel's 255 pixels."""
    root = tmp_path_factory.mktemp("known")
    data = root / "data"
    write_pair(data, "P1", 1, *_slice(BOX[0:4, 0:4], BOX[0:4, 0:8]))  # T 16, P 32, I 16: Dice 2/3, IoU 1/2
    write_pair(data, "P1", 2, *_slice(None, BOX[10:12, 10:12]))  # empty truth, 4 false-positive pixels
    write_pair(data, "P2", 1, *_slice(BOX[8:16, 8:16], BOX[8:16, 8:16]))  # T 64, P 64, I 64: Dice 1
    model = str(root / "model")
    export_red_channel_model(model, image_size=SIZE)
    return str(data), model


def test_evaluate_json_holds_hand_computed_metrics(known_folder, tmp_path):
    data, model = known_folder
    output = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--model", model, "--data-dir", data, "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    overall = {
        "dice_per_tumor_slice_mean": (2 / 3 + 1) / 2,
        "iou_per_tumor_slice_mean": (1 / 2 + 1) / 2,
        "dice_pooled": 2 * (16 + 64) / ((16 + 64) + (32 + 4 + 64)),
        "tumor_slice_detection_rate": 1.0,
        "empty_slice_fp_rate": 1.0,
    }
    patients = {"dice_per_patient_mean": (2 * 16 / (16 + 36) + 1) / 2, "dice_per_patient_median": (2 * 16 / (16 + 36) + 1) / 2}
    assert {key: result[key] for key in {**overall, **patients}} == pytest.approx({**overall, **patients})
    assert set(result["by_size"]) == {"small", "none"}  # 16 and 64 tumor pixels are small (<= 300)
    # The small bucket holds the two tumor slices only: the empty slice's false positives leave its pooled Dice.
    small = {**overall, "dice_pooled": 2 * (16 + 64) / ((16 + 64) + (32 + 64)), "empty_slice_fp_rate": None}
    assert result["by_size"]["small"] == pytest.approx(small)
    assert result["by_size"]["none"] == {
        "dice_per_tumor_slice_mean": None,
        "iou_per_tumor_slice_mean": None,
        "dice_pooled": 0.0,
        "tumor_slice_detection_rate": None,
        "empty_slice_fp_rate": 1.0,
    }
    assert result["slices"] == [
        {"case_id": "P1", "slice_index": 1, "truth_pixels": 16, "pred_pixels": 32, "dice": pytest.approx(2 / 3), "iou": 0.5},
        {"case_id": "P1", "slice_index": 2, "truth_pixels": 0, "pred_pixels": 4, "dice": 0.0, "iou": 0.0},
        {"case_id": "P2", "slice_index": 1, "truth_pixels": 64, "pred_pixels": 64, "dice": 1.0, "iou": 1.0},
    ]


def test_report_buckets_slices_by_the_given_thresholds():
    counts = [
        SliceCounts("A", 0, truth_pixels=10, pred_pixels=10, intersection=10),  # small: Dice 1
        SliceCounts("A", 1, truth_pixels=40, pred_pixels=0, intersection=0),  # medium: missed
        SliceCounts("B", 0, truth_pixels=100, pred_pixels=60, intersection=40),  # large: Dice 80/160
        SliceCounts("B", 1, truth_pixels=0, pred_pixels=0, intersection=0),  # none: no false positive
    ]
    result = evaluate.report(counts, small_max_pixels=20, medium_max_pixels=50)
    assert result["dice_per_tumor_slice_mean"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert result["dice_per_patient_mean"] == pytest.approx((2 * 10 / (50 + 10) + 2 * 40 / (100 + 60)) / 2)
    assert result["empty_slice_fp_rate"] == 0.0
    assert {bucket: values["dice_per_tumor_slice_mean"] for bucket, values in result["by_size"].items()} == {
        "small": 1.0,
        "medium": 0.0,
        "large": 0.5,
        "none": None,
    }
    assert [row["dice"] for row in result["slices"]] == [1.0, 0.0, 0.5, None]  # NaN written as null
    assert "intersection" not in result["slices"][0]


def test_evaluate_scores_the_models_post_processed_masks_and_says_so(known_folder, tmp_path, capsys):
    from core import contracts
    from core.postprocessing import PostProcessing

    data, _ = known_folder
    model = str(tmp_path / "model")
    export_red_channel_model(model, image_size=SIZE, spec=PostProcessing(0.5, 5))  # removes P1 #2's 4-pixel false positive
    output = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--model", model, "--data-dir", data, "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert [row["pred_pixels"] for row in result["slices"]] == [32, 0, 64]
    assert result["empty_slice_fp_rate"] == 0.0 and result["dice_per_patient_mean"] == pytest.approx((2 * 16 / (16 + 32) + 1) / 2)
    assert result[contracts.INFO_POSTPROCESSING] == {"threshold": 0.5, "min_component_pixels": 5}
    assert contracts.INFO_POSTPROCESSING_CHOICE not in result  # exported by hand, not chosen by the trainer
    assert "post-processing applied: probability > 0.5, then 8-connected components < 5 px removed" in capsys.readouterr().out


def test_a_model_exported_before_post_processing_is_scored_with_the_default(known_folder, tmp_path):
    import shutil

    from core import contracts

    data, model = known_folder
    old = tmp_path / "old"
    shutil.copytree(model, old)
    info = old / contracts.MODEL_INFO_DIR / contracts.MODEL_INFO_FILE
    info.write_text(json.dumps({key: value for key, value in json.loads(info.read_text()).items() if key == contracts.INFO_CONTEXT_SLICES}))
    result = evaluate.evaluate_model(str(old), data)
    assert result[contracts.INFO_POSTPROCESSING] == {"threshold": 0.5, "min_component_pixels": 0}
    assert [row["pred_pixels"] for row in result["slices"]] == [32, 4, 64]
