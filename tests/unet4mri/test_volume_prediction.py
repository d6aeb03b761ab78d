"""`predict` and `evaluate` on volumes: NIfTI cases, DICOM series, bad cases; `--pixel-mm` on TIFF."""

import csv
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from core import dicom, metrics, synthetic_data, volumes
from unet4mri import cli, evaluate
from unet4mri.volume_prediction import PREDICTION_SUFFIX, predict_volumes


@pytest.fixture(scope="module")
def nifti_cases(tmp_path_factory) -> str:
    """2 synthetic NIfTI cases x 6 slices of 32 x 32 (read-only: copy to change)."""
    root = tmp_path_factory.mktemp("nifti")
    synthetic_data.generate_volume_dataset(str(root), 2, 6, seed=1, image_size=32)
    return str(root)


def _read_rows(path) -> list[dict]:
    with open(path) as table:
        return list(csv.DictReader(table))


def test_masks_lie_on_the_scan_and_evaluate_reports_their_dice(nifti_cases, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["predict", "--model", tiny_model_dir, "--input", nifti_cases, "--output", str(out)]) == 0
    result = evaluate.evaluate_volumes(tiny_model_dir, nifti_cases)
    assert set(metrics.VOLUME_METRIC_KEYS) <= set(result) and len(result["patients"]) == 2
    rows = {row["case_id"]: row for row in _read_rows(out / "cases.csv")}
    for patient in result["patients"]:
        case = patient["case_id"]
        flair = nib.load(os.path.join(nifti_cases, case, f"{case}_flair.nii.gz"))
        truth = nib.load(os.path.join(nifti_cases, case, f"{case}_seg.nii.gz"))
        predicted = nib.load(out / case / f"{case}{PREDICTION_SUFFIX}")
        assert predicted.shape == flair.shape and np.array_equal(predicted.affine, flair.affine)
        spacing = nib.affines.voxel_sizes(flair.affine)
        again = metrics.volume_metrics(np.asarray(truth.dataobj), np.asarray(predicted.dataobj), spacing)
        assert (patient["dice"] is None and np.isnan(again["dice"])) or patient["dice"] == pytest.approx(again["dice"])
        assert patient["hd95_mm"] is None or patient["hd95_mm"] == pytest.approx(again["hd95_mm"])
        assert float(rows[case]["tumor_volume_ml"]) == pytest.approx(again["prediction_ml"])
        assert float(rows[case]["truth_volume_ml"]) == pytest.approx(again["truth_ml"])
        assert len(list((out / case).glob("*_overlay.png"))) == 6


def test_one_nifti_file_predicts_its_case(nifti_cases, tiny_model_dir, tmp_path):
    case = sorted(os.listdir(nifti_cases))[0]
    cases = predict_volumes(tiny_model_dir, os.path.join(nifti_cases, case, f"{case}_t1.nii.gz"), str(tmp_path))
    assert [row.case_id for row in cases] == [case] and os.path.isfile(cases[0].mask_path)


def test_a_dicom_case_folder_is_predicted_with_its_geometry(nifti_cases, tiny_model_dir, tmp_path):
    case = sorted(os.listdir(nifti_cases))[1]
    dicom_case = tmp_path / "dicom" / "P1"
    affine = None
    for index, suffix in enumerate(("_t1", "_flair", "_t1ce")):
        image = nib.load(os.path.join(nifti_cases, case, f"{case}{suffix}.nii.gz"))
        affine = image.affine
        data = np.rint(image.get_fdata() * (1000 if suffix == "_flair" else 1))
        dicom.write_series(data, affine, str(dicom_case / f"P1{suffix}"), f"1.2.826.0.1.3680043.2.1125.7.{index}")
    cases = predict_volumes(tiny_model_dir, str(dicom_case), str(tmp_path / "out"))
    assert [(row.case_id, row.error) for row in cases] == [("P1", "")]
    written = nib.load(cases[0].mask_path)
    series = volumes.read_image(str(dicom_case / "P1_flair"))  # the slice order is the DICOM reader's
    assert written.shape == series.shape and np.allclose(written.affine, series.affine)
    # the same voxels in space as the NIfTI the series was made from
    assert np.allclose(nib.as_closest_canonical(written).affine, nib.as_closest_canonical(nib.Nifti1Image(data, affine)).affine, atol=1e-3)


def test_a_bad_case_is_reported_and_the_others_are_kept(nifti_cases, tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(nifti_cases, data)
    bad = sorted(os.listdir(data))[0]
    flair = data / bad / f"{bad}_flair.nii.gz"
    flair.write_bytes(flair.read_bytes()[:200])  # a truncated download
    out = tmp_path / "out"
    assert cli.main(["predict", "--model", tiny_model_dir, "--input", str(data), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and str(flair) in error
    rows = {row["case_id"]: row for row in _read_rows(out / "cases.csv")}
    good = next(case for case in rows if case != bad)
    assert rows[bad]["error"] and not rows[good]["error"] and os.path.isfile(rows[good]["mask_path"])


def test_a_folder_with_two_dicom_series_is_a_one_line_error(tiny_model_dir, tmp_path, capsys):
    data = np.zeros((8, 8, 3), np.int16)
    for index in range(2):
        dicom.write_series(data, np.eye(4), str(tmp_path / "P" / "P_flair"), f"1.2.826.0.1.3680043.2.1125.8.{index}")
    for suffix in ("_t1", "_t1ce"):
        dicom.write_series(data, np.eye(4), str(tmp_path / "P" / f"P{suffix}"), f"1.2.826.0.1.3680043.2.1125.9.{len(suffix)}")
    assert cli.main(["predict", "--model", tiny_model_dir, "--input", str(tmp_path / "P"), "--output", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "P_flair: holds 2 DICOM series" in error
    assert cli.main(["predict", "--model", tiny_model_dir, "--input", str(tmp_path / "P" / "P_t1"), "--output", str(tmp_path / "o")]) == 2
    assert "a DICOM series on its own" in capsys.readouterr().err


def test_evaluate_needs_labels_and_names_the_case(nifti_cases, tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(nifti_cases, data)
    case = sorted(os.listdir(data))[0]
    os.remove(data / case / f"{case}_seg.nii.gz")
    with pytest.raises(volumes.VolumeError, match=f"{case}_seg"):
        evaluate.evaluate_volumes(tiny_model_dir, str(data))


def test_pixel_mm_turns_tiff_areas_into_mm2(tiny_dataset, tiny_model_dir, tmp_path):
    case = sorted(os.listdir(tiny_dataset))[0]
    out = tmp_path / "out"
    args = ["predict", "--model", tiny_model_dir, "--input", os.path.join(tiny_dataset, case), "--output", str(out), "--pixel-mm", "0.5"]
    assert cli.main(args + ["--threshold", "0.01"]) == 0
    for row in _read_rows(out / "slices.csv"):
        assert float(row["tumor_area_mm2"]) == pytest.approx(int(row["pred_pixels"]) * 0.25)
    (row,) = _read_rows(out / "cases.csv")
    assert float(row["tumor_area_mm2"]) == pytest.approx(int(row["tumor_volume_pixels"]) * 0.25)
