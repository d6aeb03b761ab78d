"""Prediction on volumes: a NIfTI file of a case, a BraTS-style case folder (NIfTI or DICOM series) or a root of them.

Per case, in `<output>/<case>/`: `<case>_pred_seg.nii.gz`, uint8 0/1 at the
scan's native resolution with the scan's own orientation, affine and header
(that of its FLAIR), so ITK-SNAP, 3D Slicer or FSLeyes lay it over the scan;
and `<case>_<k>_overlay.png` per axial slice k (1-based, inferior to
superior, on the 256 x 256 grid: truth outline green where the case has a
label, prediction red). Per run: `cases.csv` with the tumor volume in mL
(and, with a label, the truth's volume and the 3D Dice); a case that cannot
be read gets a row with its one-line `error` and the others go on.

Each axial slice is put on the grid the model was trained on
(`core.volume_grid`), predicted, and its probabilities are resampled back
to the native slice, where the model's post-processing (core.postprocessing:
threshold, then 8-connected components below the minimum size removed per
axial slice, in native pixels) makes the mask; `cases.csv` names it
(`threshold`, `min_component_pixels`). An explicit `threshold` replaces the
model's and keeps its other steps.
"""

import dataclasses
import math
import os

import numpy as np
from PIL import Image

from core import metrics, overlay, postprocessing, volume_grid, volumes
from unet4mri.predict import applied_postprocessing, write_rows
from unet4mri.served_model import ServedModel

PREDICTION_SUFFIX = "_pred_seg.nii.gz"


@dataclasses.dataclass(frozen=True)
class CasePrediction:
    case_id: str
    slices: int
    slices_with_tumor: int
    tumor_volume_ml: float | None
    truth_volume_ml: float | None
    dice: float | None
    mask_path: str
    error: str = ""
    threshold: float | None = None  # the post-processing applied (core.postprocessing.PostProcessing)
    min_component_pixels: int | None = None


def is_volume_input(path: str, layout: volumes.VolumeLayout = volumes.DEFAULT_LAYOUT) -> bool:
    """Whether `path` is a NIfTI file or a folder of volumes (rather than TIFF/PNG slices)."""
    if os.path.isfile(path):
        return path.lower().endswith(volumes.NIFTI_EXTENSIONS)
    return os.path.isdir(path) and (volumes.has_volumes(path, layout) or _dicom_files(path))


def _dicom_files(folder: str) -> bool:
    return any(name.lower().endswith(".dcm") for name in os.listdir(folder))


def find_cases(path: str, layout: volumes.VolumeLayout = volumes.DEFAULT_LAYOUT) -> tuple[list[volumes.VolumeCase], list[tuple[str, str]]]:
    """The cases at `path` (labels optional): a NIfTI file's own case, or every case below a folder."""
    if os.path.isdir(path) and _dicom_files(path) and not volumes.has_volumes(path, layout):
        raise volumes.VolumeError(
            f"{path}: a DICOM series on its own; give the case folder holding one series folder per contrast "
            f"(<case>{layout.pre_contrast_suffix}/, <case>{layout.flair_suffix}/, <case>{layout.post_contrast_suffix}/)"
        )
    if os.path.isfile(path):
        cases, problems = volumes.find_volume_cases(os.path.dirname(os.path.abspath(path)), layout, labels_required=False)
        mine = [case for case in cases if os.path.abspath(path) in (*map(os.path.abspath, case.contrasts), case.label)]
        if not mine:
            reasons = [reason for folder, reason in problems] or [f"{path}: not one of the files of a case ({', '.join(layout.suffixes)})"]
            raise volumes.VolumeError(reasons[0])
        return mine, []
    return volumes.find_volume_cases(path, layout, labels_required=False)


def predict_case(model: ServedModel, loaded: volumes.LoadedCase, spec: postprocessing.PostProcessing | None = None, batch_size: int = 16):
    """(grid images uint8 [z, 256, 256, 3], grid probabilities float32 [z, 256, 256], grid,
    native mask uint8 0/1 [x, y, z] in RAS+) of one loaded case; spec: the post-processing
    (None: the model's), applied to each native axial slice."""
    images, grid = volume_grid.grid_slices(loaded.images, loaded.spacing_mm)
    probabilities = model.predict_stack(images, batch_size)
    native_probabilities = np.moveaxis(volume_grid.native_volume(probabilities, grid), -1, 0)  # [z, x, y]: slices first
    native = np.moveaxis(postprocessing.apply(native_probabilities, spec or model.postprocessing), 0, -1)
    return images, probabilities, grid, native


def predict_volumes(
    model_dir: str,
    input_path: str,
    output_dir: str,
    threshold: float | None = None,
    batch_size: int = 16,
    tta: bool = False,
    layout: volumes.VolumeLayout = volumes.DEFAULT_LAYOUT,
) -> list[CasePrediction]:
    """Predict every case at `input_path`; write the masks, overlays and `cases.csv` (module docstring)."""
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    cases, problems = find_cases(input_path, layout)
    model = ServedModel.load(model_dir, tta=tta)
    spec = applied_postprocessing(model, threshold)
    results = [CasePrediction(os.path.basename(folder), 0, 0, None, None, None, "", reason) for folder, reason in problems]
    for case in cases:
        try:
            results.append(_predict_one(model, case, layout, output_dir, spec, batch_size))
        except volumes.VolumeError as error:
            results.append(CasePrediction(case.case_id, 0, 0, None, None, None, "", str(error).splitlines()[0]))
    results.sort(key=lambda row: row.case_id)
    _write_cases(results, output_dir)
    return results


def _predict_one(
    model: ServedModel,
    case: volumes.VolumeCase,
    layout: volumes.VolumeLayout,
    output_dir: str,
    spec: postprocessing.PostProcessing,
    batch_size: int,
) -> CasePrediction:
    loaded = volumes.load_case(case, layout)
    images, probabilities, grid, native = predict_case(model, loaded, spec, batch_size)
    grid_masks = postprocessing.apply(probabilities, spec)  # the overlays: the same steps on the grid slices
    folder = os.path.join(output_dir, case.case_id)
    os.makedirs(folder, exist_ok=True)
    truth_grid = volume_grid.grid_masks(loaded.mask, grid) if loaded.mask is not None else None
    for k, image in enumerate(images):
        truth = truth_grid[k] if truth_grid is not None else None
        picture = overlay.overlay(image, grid_masks[k], truth)
        Image.fromarray(picture).save(os.path.join(folder, f"{case.case_id}_{k + 1}_overlay.png"))
    mask_path = volumes.write_mask_like(native, loaded.reference, os.path.join(folder, case.case_id + PREDICTION_SUFFIX))
    truth_ml = dice = None
    if loaded.mask is not None:
        truth_ml = metrics.volume_ml(loaded.mask, loaded.spacing_mm)
        dice = metrics.volume_metrics(loaded.mask, native, loaded.spacing_mm)["dice"]
    return CasePrediction(
        case_id=case.case_id,
        slices=native.shape[2],
        slices_with_tumor=int(native.any(axis=(0, 1)).sum()),
        tumor_volume_ml=metrics.volume_ml(native, loaded.spacing_mm),
        truth_volume_ml=truth_ml,
        dice=None if dice is None or math.isnan(dice) else dice,
        mask_path=mask_path,
        threshold=spec.threshold,
        min_component_pixels=spec.min_component_pixels,
    )


def _write_cases(results: list[CasePrediction], output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    write_rows(os.path.join(output_dir, "cases.csv"), CasePrediction, results)
