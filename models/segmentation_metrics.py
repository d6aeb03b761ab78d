"""Training-time Keras metrics with the definitions of `core.metrics`.

Both threshold the probabilities at 0.5 (logit > 0), count the positive class
only, and average per-slice Dice/IoU over slices whose truth has tumor, so
`val_dice` during training means what `dice_per_tumor_slice_mean` means in the
evaluation (at the training resolution).
"""

import math

import keras
from keras import ops

from core.metrics import PROBABILITY_THRESHOLD

# sigmoid(logit) > p  <=>  logit > log(p / (1 - p)); 0 for p = 0.5.
_LOGIT_THRESHOLD = math.log(PROBABILITY_THRESHOLD / (1.0 - PROBABILITY_THRESHOLD))


class TumorSliceMetric(keras.metrics.Metric):
    """Mean per-slice Dice (or IoU) over slices whose truth has tumor pixels."""

    def __init__(self, kind: str = "dice", name: str | None = None, **kwargs):
        if kind not in ("dice", "iou"):
            raise ValueError(f"kind must be 'dice' or 'iou', got {kind!r}")
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
        predicted = ops.cast(ops.cast(y_pred, "float32") > _LOGIT_THRESHOLD, "float32")
        intersection = ops.sum(truth * predicted, axis=(1, 2, 3))
        truth_pixels = ops.sum(truth, axis=(1, 2, 3))
        pred_pixels = ops.sum(predicted, axis=(1, 2, 3))
        if self.kind == "dice":
            score = 2.0 * intersection / ops.maximum(truth_pixels + pred_pixels, 1.0)
        else:
            score = intersection / ops.maximum(truth_pixels + pred_pixels - intersection, 1.0)
        has_tumor = ops.cast(truth_pixels > 0, "float32")
        self.total.assign_add(ops.sum(score * has_tumor))
        self.count.assign_add(ops.sum(has_tumor))

    def result(self):
        return ops.where(self.count > 0, self.total / ops.maximum(self.count, 1.0), float("nan"))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}
