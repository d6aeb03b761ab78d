"""Training-time Keras metrics with the definitions of `core.metrics`.

All threshold the logits as `core.metrics` thresholds probabilities (a pixel is
tumor when sigmoid(logit) > PROBABILITY_THRESHOLD), count the positive class
only, and accumulate over every batch of an epoch, so that a validation log
value means what the evaluation key of the same definition means (at the
training resolution):

| Keras name (log key `val_<name>`) | `core.metrics` key |
|---|---|
| `dice`, `iou` (TumorSliceMetric) | `dice_per_tumor_slice_mean`, `iou_per_tumor_slice_mean` |
| `dice_pooled` (PooledDice) | `dice_pooled` |
| `empty_slice_fp_rate` (EmptySliceFalsePositiveRate) | `empty_slice_fp_rate` |

Each is a ratio of two sums over slices (`_SliceRatioMetric`), NaN when the
denominator is 0, as in `core.metrics`.
"""

import math

import keras
from keras import ops

from core.metrics import PROBABILITY_THRESHOLD

# sigmoid(logit) > p  <=>  logit > log(p / (1 - p)); 0 for p = 0.5.
LOGIT_THRESHOLD = math.log(PROBABILITY_THRESHOLD / (1.0 - PROBABILITY_THRESHOLD))

# `core.metrics` key -> the name of the Keras metric with that definition in the training logs.
KERAS_NAMES = {
    "dice_per_tumor_slice_mean": "dice",
    "iou_per_tumor_slice_mean": "iou",
    "dice_pooled": "dice_pooled",
    "empty_slice_fp_rate": "empty_slice_fp_rate",
}


def slice_counts(y_true, y_pred) -> tuple:
    """Per-slice pixel counts (intersection, truth, predicted), each float32 [batch].

    y_true: masks [batch, H, W, 1] (tumor where > 0.5); y_pred: logits [batch, H, W, 1].
    """
    truth = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
    predicted = ops.cast(ops.cast(y_pred, "float32") > LOGIT_THRESHOLD, "float32")
    axes = tuple(range(1, len(truth.shape)))
    return ops.sum(truth * predicted, axis=axes), ops.sum(truth, axis=axes), ops.sum(predicted, axis=axes)


class _SliceRatioMetric(keras.metrics.Metric):
    """A ratio of two sums over all slices seen since the last reset; NaN while the denominator is 0.

    Subclasses give each batch's terms of the sums from the per-slice counts (`_terms`).
    """

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def _terms(self, intersection, truth_pixels, pred_pixels) -> tuple:
        """(numerator, denominator) of one batch, from float32 [batch] counts."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        numerator, denominator = self._terms(*slice_counts(y_true, y_pred))
        self.total.assign_add(numerator)
        self.count.assign_add(denominator)

    def result(self):
        return ops.where(self.count > 0, self.total / ops.maximum(self.count, 1.0), float("nan"))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


class TumorSliceMetric(_SliceRatioMetric):
    """Mean per-slice Dice (or IoU) over slices whose truth has tumor pixels."""

    def __init__(self, kind: str = "dice", name: str | None = None, **kwargs):
        if kind not in ("dice", "iou"):
            raise ValueError(f"kind must be 'dice' or 'iou', got {kind!r}")
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind

    def _terms(self, intersection, truth_pixels, pred_pixels):
        if self.kind == "dice":
            score = 2.0 * intersection / ops.maximum(truth_pixels + pred_pixels, 1.0)
        else:
            score = intersection / ops.maximum(truth_pixels + pred_pixels - intersection, 1.0)
        has_tumor = ops.cast(truth_pixels > 0, "float32")
        return ops.sum(score * has_tumor), ops.sum(has_tumor)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


class PooledDice(_SliceRatioMetric):
    """2 Σ|T∩P| / (Σ|T| + Σ|P|) over all pixels of all slices, tumor-free slices included
    (so a prediction on a healthy slice lowers it)."""

    def __init__(self, name: str = KERAS_NAMES["dice_pooled"], **kwargs):
        super().__init__(name=name, **kwargs)

    def _terms(self, intersection, truth_pixels, pred_pixels):
        return 2.0 * ops.sum(intersection), ops.sum(truth_pixels + pred_pixels)


class EmptySliceFalsePositiveRate(_SliceRatioMetric):
    """Fraction of slices with empty truth that have at least one predicted pixel."""

    def __init__(self, name: str = KERAS_NAMES["empty_slice_fp_rate"], **kwargs):
        super().__init__(name=name, **kwargs)

    def _terms(self, intersection, truth_pixels, pred_pixels):
        empty = ops.cast(truth_pixels == 0, "float32")
        return ops.sum(empty * ops.cast(pred_pixels > 0, "float32")), ops.sum(empty)


def training_metrics() -> list[keras.metrics.Metric]:
    """The metrics compiled into every training (on the deepest head with deep supervision)."""
    return [
        TumorSliceMetric("dice", name=KERAS_NAMES["dice_per_tumor_slice_mean"]),
        TumorSliceMetric("iou", name=KERAS_NAMES["iou_per_tumor_slice_mean"]),
        PooledDice(),
        EmptySliceFalsePositiveRate(),
    ]
