"""Segmentation losses from logits, in Keras 3 ops.

All take `y_true` (0/1, [batch, height, width, 1]) and `logits` of the same
shape, compute in float32 (also under mixed precision) and return a scalar.
Region losses (Dice, Jaccard, Tversky) use a smoothing term of 1 pixel and a
per-batch reduction by default: the sums run over the whole batch, so a batch
of empty slices gives a finite loss, and predicting all-blank is not an
optimum as long as the batch holds tumor pixels (the input pipeline
oversamples tumor slices). `reduction="image"` averages per-image ratios
instead.

References: Milletari et al. 2016 (soft Dice); Salehi et al. 2017 (Tversky);
Abraham & Khan 2019 (Focal Tversky, alpha=0.7, gamma=4/3); Lin et al. 2017
(focal loss, alpha=0.25, gamma=2).
"""

from collections.abc import Callable

from keras import ops

SMOOTH = 1.0
Loss = Callable[[object, object], object]


def _prepare(y_true, logits):
    return ops.cast(y_true, "float32"), ops.cast(logits, "float32")


def _sum_axes(reduction: str):
    if reduction == "batch":
        return None  # everything: one ratio for the batch
    if reduction == "image":
        return (1, 2, 3)
    raise ValueError(f"reduction must be 'batch' or 'image', got {reduction!r}")


def binary_cross_entropy(y_true, logits, pos_weight: float = 1.0):
    """Mean of -[w·y·log σ(x) + (1-y)·log(1-σ(x))], stable for any logit (softplus form)."""
    y_true, logits = _prepare(y_true, logits)
    per_pixel = pos_weight * y_true * ops.softplus(-logits) + (1.0 - y_true) * ops.softplus(logits)
    return ops.mean(per_pixel)


def tversky_index(y_true, logits, alpha: float, beta: float, reduction: str = "batch"):
    """(TP + s) / (TP + α·FN + β·FP + s) with soft counts; α=β=0.5 is Dice, α=β=1 is Jaccard."""
    y_true, logits = _prepare(y_true, logits)
    probabilities = ops.sigmoid(logits)
    axes = _sum_axes(reduction)
    true_positive = ops.sum(probabilities * y_true, axis=axes)
    false_negative = ops.sum((1.0 - probabilities) * y_true, axis=axes)
    false_positive = ops.sum(probabilities * (1.0 - y_true), axis=axes)
    return (true_positive + SMOOTH) / (true_positive + alpha * false_negative + beta * false_positive + SMOOTH)


def soft_dice_loss(y_true, logits, reduction: str = "batch"):
    return ops.mean(1.0 - tversky_index(y_true, logits, 0.5, 0.5, reduction))


def soft_jaccard_loss(y_true, logits, reduction: str = "batch"):
    return ops.mean(1.0 - tversky_index(y_true, logits, 1.0, 1.0, reduction))


def tversky_loss(y_true, logits, alpha: float = 0.7, reduction: str = "batch"):
    return ops.mean(1.0 - tversky_index(y_true, logits, alpha, 1.0 - alpha, reduction))


def focal_tversky_loss(y_true, logits, alpha: float = 0.7, gamma: float = 4.0 / 3.0, reduction: str = "batch"):
    """(1 - TI)^(1/γ): with γ > 1 the gradient grows for poorly segmented (small) regions."""
    index = tversky_index(y_true, logits, alpha, 1.0 - alpha, reduction)
    return ops.mean(ops.power(ops.maximum(1.0 - index, 0.0), 1.0 / gamma))


def focal_loss(y_true, logits, alpha: float = 0.25, gamma: float = 2.0):
    """Mean of -α_t (1 - p_t)^γ log p_t, with log p_t from logits."""
    y_true, logits = _prepare(y_true, logits)
    cross_entropy = y_true * ops.softplus(-logits) + (1.0 - y_true) * ops.softplus(logits)
    probabilities = ops.sigmoid(logits)
    p_t = y_true * probabilities + (1.0 - y_true) * (1.0 - probabilities)
    alpha_t = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    return ops.mean(alpha_t * ops.power(1.0 - p_t, gamma) * cross_entropy)


def make_loss(name: str, positive_pixel_weight: float = 1.0) -> Loss:
    """The loss `name` (models.config.LOSSES) as a function (y_true, logits) -> scalar.

    positive_pixel_weight: the weight of tumor pixels in the weighted BCE
    losses (the trainer passes TrainingConfig.tumor_pixel_weight of the train
    split's negative / positive pixel ratio; > 1 raises recall).
    """
    if positive_pixel_weight <= 0:
        raise ValueError(f"positive_pixel_weight must be > 0, got {positive_pixel_weight}")
    losses: dict[str, Loss] = {
        "bce": binary_cross_entropy,
        "weighted_bce": lambda y, x: binary_cross_entropy(y, x, positive_pixel_weight),
        "dice": soft_dice_loss,
        "jaccard": soft_jaccard_loss,
        "tversky": tversky_loss,
        "focal_tversky": focal_tversky_loss,
        "focal": focal_loss,
        "bce_dice": lambda y, x: binary_cross_entropy(y, x) + soft_dice_loss(y, x),
        "weighted_bce_dice": lambda y, x: binary_cross_entropy(y, x, positive_pixel_weight) + soft_dice_loss(y, x),
    }
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(losses)}")
    chosen = losses[name]

    def loss(y_true, logits):
        return chosen(y_true, logits)

    loss.__name__ = name  # Keras shows this name in logs
    return loss
