"""Volumes: finding BraTS cases, reorienting, validating, writing predictions like the scan; DICOM series."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from core import dicom, volume_grid, volumes

# A stored orientation other than RAS+, axes permuted, turned 5 degrees about z.
_ANGLE = np.deg2rad(5.0)
OBLIQUE = np.array([[0.0, -1.2, 0.0, 10.0], [0.9, 0.0, 0.0, -5.0], [0.0, 0.0, 3.5, 2.0], [0.0, 0.0, 0.0, 1.0]])
OBLIQUE[:2] = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE)], [np.sin(_ANGLE), np.cos(_ANGLE)]]) @ OBLIQUE[:2]


def write_case(root, case_id: str, shape=(12, 10, 4), affine=OBLIQUE, labels=None, **overrides) -> str:
    """A BraTS-style case of random contrasts; `overrides` maps a suffix to the array to write instead."""
    rng = np.random.default_rng(0)
    folder = os.path.join(str(root), case_id)
    os.makedirs(folder, exist_ok=True)
    if labels is None:
        labels = np.zeros(shape, np.uint8)
        labels[3:6, 2:5, 1:3] = 4
        labels[3, 2, 1] = 2  # oedema: whole tumor only
        labels[5, 4, 2] = 1  # necrosis: whole tumor and core
    arrays = {s: rng.integers(1, 3000, shape).astype(np.int16) for s in ("_t1", "_flair", "_t1ce")}
    arrays["_seg"] = labels
    arrays.update(overrides)
    for suffix, data in arrays.items():
        nib.save(nib.Nifti1Image(data, affine), os.path.join(folder, f"{case_id}{suffix}.nii.gz"))
    return folder


def test_cases_are_found_and_a_case_without_a_contrast_is_a_problem(tmp_path):
    write_case(tmp_path / "site", "B")
    write_case(tmp_path, "A")
    os.remove(tmp_path / "A" / "A_t1ce.nii.gz")
    cases, problems = volumes.find_volume_cases(str(tmp_path))
    assert [case.case_id for case in cases] == ["B"]
    assert [os.path.basename(path) for path in cases[0].contrasts] == ["B_t1.nii.gz", "B_flair.nii.gz", "B_t1ce.nii.gz"]
    assert len(problems) == 1 and "A_t1ce" in problems[0][1]
    assert volumes.has_volumes(str(tmp_path))


def test_reorientation_to_ras_and_back_and_the_prediction_keeps_affine_and_header(tmp_path):
    folder = write_case(tmp_path, "A")
    flair = os.path.join(folder, "A_flair.nii.gz")
    volume = volumes.load_volume(flair)
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.spacing_mm == pytest.approx((1.2, 0.9, 3.5))
    stored = np.asarray(nib.load(flair).dataobj)
    assert np.array_equal(volumes.to_source_orientation(volume.data, volume), stored)
    out = volumes.write_mask_like((volume.data > 1500).astype(np.uint8), volume, str(tmp_path / "out" / "A_pred_seg.nii.gz"))
    written = nib.load(out)
    assert written.shape == stored.shape and np.allclose(written.affine, OBLIQUE)
    assert written.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(written.dataobj), (stored > 1500).astype(np.uint8))
    assert os.listdir(tmp_path / "out") == ["A_pred_seg.nii.gz"]


def test_display_orientation_is_radiological():
    plane = np.zeros((4, 3))  # [x, y]: x to the patient's right, y anterior
    plane[3, 2] = 1  # right-most, anterior-most voxel
    shown = volume_grid.display_plane(plane)
    assert shown.shape == (3, 4) and shown[0, 0] == 1  # top row (anterior), left column (patient right)
    assert np.array_equal(volume_grid.canonical_plane(shown), plane)


@pytest.mark.parametrize("tumor_labels, voxels", [("whole", 18), ("core", 17), ("enhancing", 16)])
def test_label_sets(tmp_path, tumor_labels, voxels):
    cases, _ = volumes.find_volume_cases(write_case(tmp_path, "A"))
    loaded = volumes.load_case(cases[0], volumes.VolumeLayout(tumor_labels=tumor_labels))
    assert loaded.images.shape == (10, 12, 4, 3) and int(loaded.mask.sum()) == voxels


def test_grid_keeps_the_field_of_view_and_returns_masks_at_native_size():
    grid = volume_grid.SliceGrid(rows=20, columns=30, row_mm=1.5, column_mm=1.0, size=64)
    assert grid.pixel_mm == pytest.approx(30 / 64)
    plane = np.zeros((20, 30))
    plane[5:15, 10:20] = 1
    on_grid = grid.to_grid(plane)
    assert on_grid.sum() * grid.pixel_mm**2 == pytest.approx(plane.sum() * 1.5, rel=0.05)  # area in mm² kept
    assert np.array_equal(grid.from_grid(on_grid) > 0.5, plane > 0)


def test_intensities_are_scaled_per_volume_by_percentiles():
    volume = np.zeros((10, 10, 10), np.float32)
    volume[2:8, 2:8, 2:8] = np.linspace(100.0, 40000.0, 216).reshape(6, 6, 6)
    scaled = volume_grid.normalize_intensities(volume)
    assert scaled.dtype == np.uint8 and scaled[0, 0, 0] == 0
    assert scaled[2:8, 2:8, 2:8].min() == 0 and scaled.max() == 255
    assert np.array_equal(volume_grid.normalize_intensities(volume * 0.001), scaled)  # float scans alike


def _truncated(folder: str) -> None:
    path = os.path.join(folder, "A_flair.nii.gz")
    with open(path, "rb") as source:
        data = source.read()
    with open(path, "wb") as out:
        out.write(data[: len(data) // 2])


def _four_d(folder: str) -> None:
    nib.save(nib.Nifti1Image(np.ones((12, 10, 4, 2), np.int16), OBLIQUE), os.path.join(folder, "A_flair.nii.gz"))


def _other_shape(folder: str) -> None:
    nib.save(nib.Nifti1Image(np.ones((12, 10, 5), np.int16), OBLIQUE), os.path.join(folder, "A_t1ce.nii.gz"))


def _other_affine(folder: str) -> None:
    shifted = OBLIQUE.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.ones((12, 10, 4), np.int16), shifted), os.path.join(folder, "A_t1.nii.gz"))


def _nan(folder: str) -> None:
    data = np.ones((12, 10, 4), np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, OBLIQUE), os.path.join(folder, "A_flair.nii.gz"))


def _fractional_label(folder: str) -> None:
    nib.save(nib.Nifti1Image(np.full((12, 10, 4), 0.5, np.float32), OBLIQUE), os.path.join(folder, "A_seg.nii.gz"))


def _not_gzip(folder: str) -> None:
    with gzip.open(os.path.join(folder, "A_t1.nii.gz"), "wb") as out:
        out.write(b"not a nifti header")


@pytest.mark.parametrize(
    "damage, file, message",
    [
        (_truncated, "A_flair.nii.gz", "not a readable"),
        (_four_d, "A_flair.nii.gz", "expected a 3D volume, got shape [12, 10, 4, 2]"),
        (_other_shape, "A_t1ce.nii.gz", "differs from"),
        (_other_affine, "A_t1.nii.gz", "affine differs"),
        (_nan, "A_flair.nii.gz", "1 NaN or infinite voxels"),
        (_fractional_label, "A_seg.nii.gz", "label is not integer (found 0.5)"),
        (_not_gzip, "A_t1.nii.gz", "not a readable NIfTI"),
    ],
)
def test_bad_volumes_are_one_line_errors_naming_the_file(tmp_path, damage, file, message):
    folder = write_case(tmp_path, "A")
    damage(folder)
    cases, _ = volumes.find_volume_cases(str(tmp_path))
    with pytest.raises(volumes.VolumeError) as error:
        volumes.load_case(cases[0])
    text = str(error.value)
    assert "\n" not in text and text.startswith(os.path.join(folder, file)) and message in text


def test_a_dicom_series_reads_with_its_geometry_and_two_series_are_an_error(tmp_path):
    import locale

    before = locale.setlocale(locale.LC_ALL)
    affine = np.array([[-0.9, 0, 0, 50.0], [0, -0.9, 0, 60.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1.0]])
    data = np.random.default_rng(0).integers(0, 1000, (16, 18, 5)).astype(np.int16)
    dicom.write_series(data, affine, str(tmp_path / "A" / "A_flair"), "1.2.826.0.1.3680043.2.1125.1.1")
    image = volumes.read_image(str(tmp_path / "A" / "A_flair"))
    assert np.allclose(image.affine, affine, atol=1e-4) and np.array_equal(np.asarray(image.dataobj), data)
    assert volumes.has_volumes(str(tmp_path))
    dicom.write_series(data, affine, str(tmp_path / "A" / "A_flair"), "1.2.826.0.1.3680043.2.1125.1.2")
    with pytest.raises(volumes.VolumeError, match=r"A_flair: holds 2 DICOM series"):
        volumes.load_volume(str(tmp_path / "A" / "A_flair"))
    assert locale.setlocale(locale.LC_ALL) == before  # GDCM's "C" locale does not leak out
