"""Dice and IoU for binary tumor masks: the one definition used everywhere.

For one slice with truth T and prediction P (binary, after thresholding the
probabilities at 0.5):
  Dice = 2|T ∩ P| / (|T| + |P|),   IoU = |T ∩ P| / |T ∪ P|,   so IoU = Dice / (2 - Dice).

Empty-mask convention, stated once:
- A slice whose truth is empty is never part of a tumor-slice mean (a perfect
  empty prediction is not "Dice 1", and a bad one is not "Dice 0"): such
  slices count only in the empty-slice false-positive rate, where any
  predicted pixel is a false positive.
- `dice_per_tumor_slice_mean` / `iou_per_tumor_slice_mean`: mean over slices
  whose truth has tumor.
- `dice_pooled`: 2 Σ|T ∩ P| / (Σ|T| + Σ|P|) over all pixels of all slices.
- `dice_per_patient_*`: the 3D Dice of each patient's stacked slices (Buda et
  al. 2019), mean and median over patients whose truth has tumor.
- `tumor_slice_detection_rate`: fraction of tumor slices with any predicted pixel.
- `empty_slice_fp_rate`: fraction of empty-truth slices with any predicted pixel.
A metric with nothing to average over (no tumor slice, no empty slice) is NaN,
written as null in JSON.

Volumes (3D masks at their native resolution, voxel spacing in mm):
- `volume_ml`: voxels x voxel volume / 1000; `volume_error_ml`: |V(P) - V(T)| in
  mL, 0 when both are empty.
- `hausdorff95_mm`: the 95th-percentile Hausdorff distance in mm between the
  surfaces (mask voxels with a face neighbour outside the mask or the volume):
  max(p95 of the distances from each truth surface voxel to the nearest
  prediction surface voxel, p95 the other way), voxel centre to centre, the
  percentile interpolated linearly (MONAI's `compute_hausdorff_distance`,
  percentile=95). Empty masks, as BraTS scores them: truth and prediction both
  empty -> NaN (nothing to measure; such patients are left out of the means, as
  for Dice); exactly one empty -> the diagonal of the volume in mm, the largest
  distance possible (BraTS's 373.13 mm for 240 x 240 x 155 voxels of 1 mm).
- `volume_metrics` gathers them per patient; `summarize_volumes` gives the
  mean and median over patients whose truth has tumor (VOLUME_METRIC_KEYS).
"""

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

PROBABILITY_THRESHOLD = 0.5

SLICE_METRIC_KEYS = (
    "dice_per_tumor_slice_mean",
    "iou_per_tumor_slice_mean",
    "dice_pooled",
    "tumor_slice_detection_rate",
    "empty_slice_fp_rate",
)
PATIENT_METRIC_KEYS = ("dice_per_patient_mean", "dice_per_patient_median")
METRIC_KEYS = PATIENT_METRIC_KEYS + SLICE_METRIC_KEYS
VOLUME_METRIC_KEYS = (
    "dice_per_patient_mean",
    "dice_per_patient_median",
    "hd95_mm_mean",
    "hd95_mm_median",
    "volume_error_ml_mean",
    "volume_error_ml_median",
)


@dataclasses.dataclass(frozen=True)
class SliceCounts:
    """Pixel counts of one slice: all that the metrics need."""

    case_id: str
    slice_index: int
    truth_pixels: int
    pred_pixels: int
    intersection: int

    @property
    def dice(self) -> float:
        return dice_from_counts(self.intersection, self.truth_pixels, self.pred_pixels)

    @property
    def iou(self) -> float:
        return iou_from_counts(self.intersection, self.truth_pixels, self.pred_pixels)


def dice_from_counts(intersection: float, truth_pixels: float, pred_pixels: float) -> float:
    """2|T∩P| / (|T|+|P|); NaN when both masks are empty."""
    total = truth_pixels + pred_pixels
    return 2.0 * intersection / total if total > 0 else math.nan


def iou_from_counts(intersection: float, truth_pixels: float, pred_pixels: float) -> float:
    """|T∩P| / |T∪P|; NaN when both masks are empty."""
    union = truth_pixels + pred_pixels - intersection
    return intersection / union if union > 0 else math.nan


def slice_counts(truth: np.ndarray, prediction: np.ndarray, case_id: str = "", slice_index: int = 0) -> SliceCounts:
    """Counts of one slice. truth: [H, W] 0/1 (or bool); prediction: [H, W] binary mask or probabilities.

    Probabilities are thresholded at PROBABILITY_THRESHOLD (a pixel is tumor when p > 0.5).
    """
    truth = np.asarray(truth) > 0
    prediction = np.asarray(prediction)
    predicted = prediction > PROBABILITY_THRESHOLD if prediction.dtype.kind == "f" else prediction > 0
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    return SliceCounts(
        case_id=case_id,
        slice_index=int(slice_index),
        truth_pixels=int(truth.sum()),
        pred_pixels=int(predicted.sum()),
        intersection=int(np.logical_and(truth, predicted).sum()),
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarize(slices: Iterable[SliceCounts]) -> dict[str, float]:
    """All METRIC_KEYS from per-slice counts (see the module docstring for definitions)."""
    slices = list(slices)
    tumor = [s for s in slices if s.truth_pixels > 0]
    empty = [s for s in slices if s.truth_pixels == 0]
    patients: dict[str, list[int]] = {}
    for s in slices:
        totals = patients.setdefault(s.case_id, [0, 0, 0])
        totals[0] += s.intersection
        totals[1] += s.truth_pixels
        totals[2] += s.pred_pixels
    patient_dice = [dice_from_counts(*totals) for totals in patients.values() if totals[1] > 0]
    return {
        "dice_per_patient_mean": _mean(patient_dice),
        "dice_per_patient_median": float(np.median(patient_dice)) if patient_dice else math.nan,
        "dice_per_tumor_slice_mean": _mean([s.dice for s in tumor]),
        "iou_per_tumor_slice_mean": _mean([s.iou for s in tumor]),
        "dice_pooled": dice_from_counts(
            sum(s.intersection for s in slices),
            sum(s.truth_pixels for s in slices),
            sum(s.pred_pixels for s in slices),
        ),
        "tumor_slice_detection_rate": _mean([float(s.pred_pixels > 0) for s in tumor]),
        "empty_slice_fp_rate": _mean([float(s.pred_pixels > 0) for s in empty]),
    }


def _binary(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    return mask > PROBABILITY_THRESHOLD if mask.dtype.kind == "f" else mask > 0


def _check_volumes(truth: np.ndarray, prediction: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth, prediction = _binary(truth), _binary(prediction)
    spacing = np.asarray(spacing_mm, dtype=float)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    if spacing.shape != (truth.ndim,) or (spacing <= 0).any():
        raise ValueError(f"spacing_mm needs {truth.ndim} positive values, got {list(spacing_mm)}")
    return truth, prediction, spacing


def volume_ml(mask: np.ndarray, spacing_mm) -> float:
    """Volume in mL of a binary mask [x, y, z] with voxel spacing (x, y, z) in mm."""
    mask, _, spacing = _check_volumes(mask, mask, spacing_mm)
    return float(mask.sum()) * float(np.prod(spacing)) / 1000.0


def volume_error_ml(truth: np.ndarray, prediction: np.ndarray, spacing_mm) -> float:
    """|V(prediction) - V(truth)| in mL; 0 when both are empty."""
    return abs(volume_ml(prediction, spacing_mm) - volume_ml(truth, spacing_mm))


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)


def hausdorff95_mm(truth: np.ndarray, prediction: np.ndarray, spacing_mm) -> float:
    """95th-percentile Hausdorff distance in mm (definition and empty-mask conventions in the module docstring)."""
    truth, prediction, spacing = _check_volumes(truth, prediction, spacing_mm)
    if not truth.any() and not prediction.any():
        return math.nan
    if not truth.any() or not prediction.any():
        return float(np.linalg.norm(np.array(truth.shape) * spacing))
    truth_surface, prediction_surface = _surface(truth), _surface(prediction)
    to_prediction = ndimage.distance_transform_edt(~prediction_surface, sampling=spacing)[truth_surface]
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)[prediction_surface]
    return float(max(np.percentile(to_prediction, 95), np.percentile(to_truth, 95)))


def volume_metrics(truth: np.ndarray, prediction: np.ndarray, spacing_mm, case_id: str = "") -> dict:
    """One patient's 3D metrics: dice (NaN when both are empty), hd95_mm, volume_error_ml, truth_ml, prediction_ml."""
    truth, prediction, _ = _check_volumes(truth, prediction, spacing_mm)
    return {
        "case_id": case_id,
        "dice": dice_from_counts(float(np.logical_and(truth, prediction).sum()), float(truth.sum()), float(prediction.sum())),
        "hd95_mm": hausdorff95_mm(truth, prediction, spacing_mm),
        "volume_error_ml": volume_error_ml(truth, prediction, spacing_mm),
        "truth_ml": volume_ml(truth, spacing_mm),
        "prediction_ml": volume_ml(prediction, spacing_mm),
    }


def summarize_volumes(patients: Iterable[dict]) -> dict[str, float]:
    """VOLUME_METRIC_KEYS: mean and median over the patients (`volume_metrics` rows) whose truth has tumor."""
    with_tumor = [row for row in patients if row["truth_ml"] > 0]
    summary = {}
    for name in ("dice", "hd95_mm", "volume_error_ml"):
        values = [row[name] for row in with_tumor]
        key = "dice_per_patient" if name == "dice" else name
        summary[f"{key}_mean"] = _mean(values)
        summary[f"{key}_median"] = float(np.median(values)) if values else math.nan
    return summary
