import csv
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from core import slices, synthetic_data
from unet4mri import cli, predict


def test_predicting_a_case_folder_writes_masks_overlays_and_tables(tiny_dataset, tiny_model_dir, tmp_path):
    case = synthetic_data.case_id(2, 0)
    out = tmp_path / "out"
    results = predict.predict_folder(tiny_model_dir, os.path.join(tiny_dataset, case), str(out))
    assert len(results) == 10 and {r.case_id for r in results} == {case}
    for result in results:
        mask = tifffile.imread(out / case / f"{result.name}_pred_mask.tif")
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert int((mask > 0).sum()) == result.pred_pixels
        with Image.open(out / case / f"{result.name}_overlay.png") as picture:
            assert picture.size == (256, 256) and picture.mode == "RGB"
        assert result.truth_pixels is not None  # masks exist beside the slices
    with open(out / "slices.csv") as table:
        assert len(list(csv.DictReader(table))) == 10
    with open(out / "cases.csv") as table:
        rows = list(csv.DictReader(table))
    assert [row["case_id"] for row in rows] == [case]
    assert int(rows[0]["tumor_volume_pixels"]) == sum(r.pred_pixels for r in results)


def test_threshold_changes_the_mask(tiny_dataset, tiny_model_dir, tmp_path):
    case = os.path.join(tiny_dataset, synthetic_data.case_id(1, 0))
    low = predict.predict_folder(tiny_model_dir, case, str(tmp_path / "low"), threshold=0.01)
    high = predict.predict_folder(tiny_model_dir, case, str(tmp_path / "high"), threshold=0.99)
    assert sum(r.pred_pixels for r in low) > sum(r.pred_pixels for r in high)


def test_a_single_png_of_another_size_without_mask(tiny_model_dir, tmp_path):
    path = tmp_path / "scan" / "slice_7.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(path)
    results = predict.predict_folder(tiny_model_dir, str(path), str(tmp_path / "out"))
    assert len(results) == 1 and results[0].truth_pixels is None and results[0].dice is None
    with Image.open(tmp_path / "out" / "scan" / "slice_7_overlay.png") as picture:
        assert picture.size == (200, 300)


def test_overlay_outlines_follow_the_masks():
    from core import overlay

    image = np.zeros((8, 8, 3), np.uint8)
    truth = np.zeros((8, 8), np.uint8)
    truth[2:6, 2:6] = 1
    picture = overlay.overlay(image, np.zeros((8, 8)), truth)
    green = np.all(picture == overlay.TRUTH_COLOR, axis=-1)
    assert green.sum() == 16 and green[2:6, 2:6].all()  # a 4x4 square is all outline at width 2
    assert overlay.outline(truth, 1).sum() == 12  # its 1-px ring leaves the 2x2 inside


@pytest.mark.parametrize("make_input", ["missing", "mask", "text"])
def test_bad_inputs_are_one_line_errors(tmp_path, tiny_model_dir, capsys, make_input):
    target = tmp_path / "x_mask.tif" if make_input == "mask" else tmp_path / ("nothing" if make_input == "missing" else "notes.txt")
    if make_input == "mask":
        tifffile.imwrite(target, np.zeros((4, 4), np.uint8))
    elif make_input == "text":
        target.write_text("hello")
    assert cli.main(["predict", "--model", tiny_model_dir, "--input", str(target), "--output", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("unet4mri: error:") and len(error.strip().splitlines()) == 1


def test_predict_reads_slices_with_masks_optional(tmp_path):
    from tests.conftest import random_pair, write_pair

    _, mask_path = write_pair(tmp_path, "C", 1, *random_pair(np.random.default_rng(0)))
    os.remove(mask_path)
    pairs = slices.find_slice_pairs(str(tmp_path), masks_required=False)
    assert [(p.slice_index, p.mask_path) for p in pairs] == [(1, None)]


def test_predict_writes_the_models_post_processed_masks_and_names_the_steps(tmp_path, capsys):
    from core.postprocessing import PostProcessing
    from tests.conftest import write_pair
    from tests.helpers import export_red_channel_model

    model = str(tmp_path / "model")
    export_red_channel_model(model, image_size=32, spec=PostProcessing(0.5, 5))
    image = np.zeros((32, 32, 3), np.uint8)
    image[2:6, 2:6, 0] = 255  # 16 pixels: kept
    image[20:22, 20:22, 0] = 255  # 4 pixels: removed
    write_pair(tmp_path / "data", "P1", 1, image, np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    assert cli.main(["predict", "--model", model, "--input", str(tmp_path / "data"), "--output", str(out)]) == 0
    assert "post-processing: probability > 0.5, then 8-connected components < 5 px removed per slice" in capsys.readouterr().out
    assert int((tifffile.imread(out / "P1" / "P1_1_pred_mask.tif") > 0).sum()) == 16
    for table in ("slices.csv", "cases.csv"):
        with open(out / table) as rows:
            row = next(csv.DictReader(rows))
        assert (float(row["threshold"]), int(row["min_component_pixels"])) == (0.5, 5), table
    # An explicit threshold replaces the model's and keeps its minimum size.
    [result] = predict.predict_folder(model, str(tmp_path / "data"), str(tmp_path / "out2"), threshold=0.3)
    assert (result.threshold, result.min_component_pixels, result.pred_pixels) == (0.3, 5, 16)
