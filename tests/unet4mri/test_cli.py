import json

import pytest

from core import slices
from unet4mri import cli


def test_generate_data_writes_the_layout(tmp_path, capsys):
    assert cli.main(["generate-data", "--out", str(tmp_path), "--patients", "2", "--slices", "3", "--image-size", "64"]) == 0
    assert len(slices.find_slice_pairs(str(tmp_path))) == 6
    assert "wrote 2 patients x 3 slices" in capsys.readouterr().out


def test_generate_data_unseen_family(tmp_path, capsys):
    argv = ["generate-data", "--family", "unseen", "--out", str(tmp_path), "--patients", "1", "--slices", "2", "--image-size", "64"]
    assert cli.main(argv) == 0
    assert {pair.case_id for pair in slices.find_slice_pairs(str(tmp_path))} == {"UNS_TA_0000_0000"}
    assert "wrote 1 patients x 2 slices (64x64, tiff, unseen family)" in capsys.readouterr().out


def test_build_model_prints_the_parameter_count(capsys):
    assert cli.main(["build-model", "--model", "unetpp", "--n-filters", "8", "--depth", "2", "--image-size", "32"]) == 0
    assert "unetpp:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--data-dir", "/no/such/folder", "--output-dir", "{tmp}/out"], "data folder not found: /no/such/folder"),
        (["evaluate", "--model", "{tmp}", "--data-dir", "{tmp}", "--output", "{tmp}/x.json"], "neither a SavedModel nor a folder"),
        (["build-model", "--n-filters", "16", "--image-size", "100"], "image_size must be a multiple"),
        (["run", "--data-dir", "{tmp}", "--output-dir", "{tmp}/out", "--prune-level", "2"], "prune_level needs"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(tmp_path, capsys, argv, message):
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("unet4mri: error: ") and message in error
    assert len(error.splitlines()) == 1


def test_evaluate_on_a_folder_without_slices_is_a_clean_error(tmp_path, capsys, tiny_model_dir):
    assert cli.main(["evaluate", "--model", tiny_model_dir, "--data-dir", str(tmp_path), "--output", str(tmp_path / "m.json")]) == 2
    assert "no <case>_<n>.tif slices found" in capsys.readouterr().err


def test_evaluate_writes_the_documented_json(tmp_path, tiny_dataset, tiny_model_dir):
    output = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--model", tiny_model_dir, "--data-dir", tiny_dataset, "--output", str(output)]) == 0
    result = json.loads(output.read_text(encoding="utf-8"))
    assert set(result) == {
        "dice_per_patient_mean",
        "dice_per_patient_median",
        "dice_pooled",
        "dice_per_tumor_slice_mean",
        "iou_per_tumor_slice_mean",
        "empty_slice_fp_rate",
        "tumor_slice_detection_rate",
        "by_size",
        "slices",
        "postprocessing",  # the steps applied (an untrained model exported by hand: no choice recorded)
    }
    assert result["postprocessing"] == {"threshold": 0.5, "min_component_pixels": 0}
    assert len(result["slices"]) == 60
    assert set(result["slices"][0]) == {"case_id", "slice_index", "truth_pixels", "pred_pixels", "dice", "iou"}
    assert set(result["by_size"]) <= {"none", "small", "medium", "large"} and "none" in result["by_size"]


def test_docs_cli_reference_is_in_sync_with_the_parser():
    import pathlib

    reference = (pathlib.Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    begin, end = reference.index(cli.REFERENCE_BEGIN), reference.index(cli.REFERENCE_END) + len(cli.REFERENCE_END)
    assert reference[begin:end] == cli.cli_reference(), "run: .venv/bin/python scripts/sync_cli_reference.py"
