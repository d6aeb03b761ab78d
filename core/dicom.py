"""DICOM series read (and, for tests and examples, written) with SimpleITK.

A series folder holds the files of exactly one series (one SeriesInstanceUID);
a folder with several is an error, since which one is the contrast is not ours
to guess. DICOM positions are in LPS (x to the patient's left, y posterior);
nibabel's affines are in RAS: the x and y rows are negated.

GDCM (inside SimpleITK) sets the process's locale to "C" while it reads and
writes, which turns Python's default text encoding to ASCII for everything
that runs afterwards; every call here puts the locale back as it was.
"""

import contextlib
import locale
import os

import nibabel as nib
import numpy as np

from core.slices import SliceError

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _sitk():
    import SimpleITK  # imported here: only DICOM input needs it

    SimpleITK.ProcessObject_SetGlobalWarningDisplay(False)  # our errors name the folder; ITK's go to stderr
    return SimpleITK


@contextlib.contextmanager
def _keeping_locale():
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def read_series(folder: str) -> nib.Nifti1Image:
    """The one DICOM series in `folder` as a NIfTI image (see `_read_series`)."""
    with _keeping_locale():
        return _read_series(folder)


def _read_series(folder: str) -> nib.Nifti1Image:
    """The one DICOM series in `folder` as a NIfTI image: data [i, j, k] (column, row, slice)
    and the affine of the series' geometry in RAS mm. SliceError naming the folder when it
    holds no series, several, or unreadable files."""
    sitk = _sitk()
    try:
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    except RuntimeError as error:
        raise SliceError(f"{folder}: not a readable DICOM folder ({error})") from error
    if not series:
        raise SliceError(f"{folder}: no DICOM series found")
    if len(series) > 1:
        raise SliceError(f"{folder}: holds {len(series)} DICOM series ({', '.join(series[:3])}); put each series in its own folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series[0])
    try:
        image = sitk.ReadImage(list(files))
        array = sitk.GetArrayFromImage(image)  # [k, j, i]
    except RuntimeError as error:
        raise SliceError(f"{folder}: not a readable DICOM series ({str(error).strip().splitlines()[-1]})") from error
    if image.GetNumberOfComponentsPerPixel() != 1 or array.ndim != 3:
        raise SliceError(f"{folder}: expected a 3D greyscale series, got {image.GetNumberOfComponentsPerPixel()} components")
    return nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), lps_affine_to_ras(image))


def lps_affine_to_ras(image) -> np.ndarray:
    """4x4 voxel (i, j, k) -> RAS mm affine of a SimpleITK image."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(image.GetSpacing(), dtype=float)
    affine[:3, 3] = image.GetOrigin()
    return _LPS_TO_RAS @ affine


def write_series(data: np.ndarray, affine: np.ndarray, folder: str, series_uid: str, description: str = "") -> list[str]:
    """Write int16 `data` [i, j, k] with the RAS `affine` as one DICOM series (see `_write_series`)."""
    with _keeping_locale():
        return _write_series(data, affine, folder, series_uid, description)


def _write_series(data: np.ndarray, affine: np.ndarray, folder: str, series_uid: str, description: str = "") -> list[str]:
    """Write int16 `data` [i, j, k] with the RAS `affine` as one DICOM series, one file per slice k
    (`<folder>/<last part of the uid>_<k>.dcm`); for tests and examples. Returns the file paths."""
    sitk = _sitk()
    lps = _LPS_TO_RAS @ affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in range(data.shape[2]):
        plane = sitk.GetImageFromArray(np.ascontiguousarray(data[:, :, k].T.astype(np.int16)))
        origin = lps[:3, :3] @ np.array([0.0, 0.0, k]) + lps[:3, 3]
        tags = {
            "0008|0060": "MR",
            "0020|000d": series_uid.rsplit(".", 1)[0],
            "0020|000e": series_uid,
            "0008|103e": description,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{value:.6f}" for value in origin),
            "0020|0037": "\\".join(f"{value:.6f}" for value in (*direction[:, 0], *direction[:, 1])),
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",  # row spacing (between rows: along j), column spacing
            "0018|0050": f"{spacing[2]:.6f}",
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        plane.SetSpacing((float(spacing[0]), float(spacing[1])))
        path = os.path.join(folder, f"{series_uid.rsplit('.', 1)[-1]}_{k:04d}.dcm")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(path)
        writer.Execute(plane)
        paths.append(path)
    return paths
