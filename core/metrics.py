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
"""

import dataclasses
import math
from collections.abc import Iterable

import numpy as np

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
