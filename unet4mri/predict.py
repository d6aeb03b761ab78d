"""Prediction on new scans: one slice (TIFF/PNG), a case folder or a kaggle_3m root.

Per slice: `<output>/<case>/<name>_pred_mask.tif` (uint8 0/255, the dataset's
own convention) and `<name>_overlay.png` (the slice with the truth outline in
green where a mask exists and the predicted outline in red). Per run:
`slices.csv` (one row per slice) and `cases.csv` (per case: tumor volume in
pixels and the slices with tumor); both name the post-processing applied
(`threshold`, `min_component_pixels`). The masks are the model's own
post-processed `mask` output (core.postprocessing, the parameters chosen at
training); an explicit `threshold` replaces the model's threshold and keeps
its other steps (`core.postprocessing.apply` on the probabilities). TIFF slices carry no spacing: with
`pixel_mm` (the side of a pixel in mm) areas are also given in mm².
Volumes (NIfTI, DICOM) are predicted by `unet4mri.volume_prediction`.
"""

import csv
import dataclasses
import os

import numpy as np
import tifffile
from PIL import Image
from tqdm import tqdm

from core import metrics, overlay, postprocessing, slices
from unet4mri.served_model import Prediction, ServedModel

_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class SlicePrediction:
    case_id: str
    name: str
    image_path: str
    pred_pixels: int
    truth_pixels: int | None
    dice: float | None
    tumor_area_mm2: float | None = None
    threshold: float | None = None  # the post-processing applied (core.postprocessing.PostProcessing)
    min_component_pixels: int | None = None


def find_inputs(path: str) -> list[slices.SlicePair]:
    """The slices at `path`: one image file, or every `<case>_<n>.tif` below a folder (masks optional)."""
    if os.path.isfile(path):
        if not path.lower().endswith(_IMAGE_SUFFIXES) or path.lower().endswith(("_mask.tif", "_mask.tiff")):
            raise slices.SliceError(f"{path}: not a slice image (expected .tif, .png or .jpg, not a mask)")
        stem, suffix = os.path.splitext(path)
        mask = stem + "_mask" + suffix
        return [slices.SlicePair(os.path.basename(os.path.dirname(os.path.abspath(path))), 0, path, mask if os.path.isfile(mask) else None)]
    return slices.find_slice_pairs(path, masks_required=False)


def predict_folder(
    model_dir: str,
    input_path: str,
    output_dir: str,
    threshold: float | None = None,
    batch_size: int = 16,
    tta: bool = False,
    pixel_mm: float | None = None,
) -> list[SlicePrediction]:
    """Predict every slice at `input_path`, write masks, overlays and the CSV summaries
    (threshold: None for the model's post-processing, else the model's with this threshold;
    tta: with flip test-time augmentation, 4x the network passes; pixel_mm: pixel side in mm, for areas in mm²)."""
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if pixel_mm is not None and not pixel_mm > 0:
        raise ValueError(f"pixel_mm must be > 0, got {pixel_mm}")
    pairs = find_inputs(input_path)
    model = ServedModel.load(model_dir, tta=tta)  # a lone slice is its own context
    spec = applied_postprocessing(model, threshold)
    results = []
    batches = tqdm(total=len(pairs), desc="predicting", unit="slice", leave=False)
    for index, image, predicted in model.predict_pairs(pairs, batch_size):
        result = _write_slice(pairs[index], image, slice_mask(predicted, model, spec), output_dir)
        area = None if pixel_mm is None else result.pred_pixels * pixel_mm**2
        results.append(
            dataclasses.replace(result, tumor_area_mm2=area, threshold=spec.threshold, min_component_pixels=spec.min_component_pixels)
        )
        batches.update()
    batches.close()
    results.sort(key=lambda r: (r.case_id, r.name))
    _write_tables(results, output_dir)
    return results


def applied_postprocessing(model: ServedModel, threshold: float | None = None) -> postprocessing.PostProcessing:
    """The model's post-processing, with `threshold` instead of its own when one is given."""
    return model.postprocessing if threshold is None else dataclasses.replace(model.postprocessing, threshold=threshold)


def slice_mask(predicted: Prediction, model: ServedModel, spec: postprocessing.PostProcessing) -> np.ndarray:
    """The mask uint8 [H, W] of one slice: the model's own when `spec` is its post-processing, else `spec` applied."""
    return predicted.mask if spec == model.postprocessing else postprocessing.apply(predicted.probabilities, spec)


def _write_slice(pair: slices.SlicePair, image: np.ndarray, predicted: np.ndarray, output_dir: str) -> SlicePrediction:
    name = os.path.splitext(os.path.basename(pair.image_path))[0]
    folder = os.path.join(output_dir, pair.case_id)
    os.makedirs(folder, exist_ok=True)
    truth = slices.read_mask(pair.mask_path, image.shape[:2]) if pair.mask_path else None
    tifffile.imwrite(os.path.join(folder, f"{name}_pred_mask.tif"), predicted.astype(np.uint8) * np.uint8(255))
    Image.fromarray(overlay.overlay(image, predicted, truth)).save(os.path.join(folder, f"{name}_overlay.png"))
    counts = metrics.slice_counts(truth, predicted) if truth is not None else None
    return SlicePrediction(
        case_id=pair.case_id,
        name=name,
        image_path=pair.image_path,
        pred_pixels=int(predicted.sum()),
        truth_pixels=counts.truth_pixels if counts else None,
        dice=None if counts is None or counts.truth_pixels + counts.pred_pixels == 0 else counts.dice,
    )


def write_rows(path: str, row_class, rows: list) -> None:
    """A CSV of dataclass rows: a header of the field names, None as an empty cell."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([field.name for field in dataclasses.fields(row_class)])
        for row in rows:
            writer.writerow(["" if value is None else value for value in dataclasses.astuple(row)])


def _write_tables(results: list[SlicePrediction], output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    write_rows(os.path.join(output_dir, "slices.csv"), SlicePrediction, results)
    cases: dict[str, list[SlicePrediction]] = {}
    for row in results:
        cases.setdefault(row.case_id, []).append(row)
    with open(os.path.join(output_dir, "cases.csv"), "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "case_id",
                "slices",
                "slices_with_tumor",
                "tumor_volume_pixels",
                "tumor_area_mm2",
                "tumor_slices",
                "threshold",
                "min_component_pixels",
            ]
        )
        for case_id, rows in sorted(cases.items()):
            with_tumor = [row.name for row in rows if row.pred_pixels > 0]
            area = "" if rows[0].tumor_area_mm2 is None else sum(row.tumor_area_mm2 for row in rows)
            pixels = sum(row.pred_pixels for row in rows)
            writer.writerow(
                [case_id, len(rows), len(with_tumor), pixels, area, " ".join(with_tumor), rows[0].threshold, rows[0].min_component_pixels]
            )
