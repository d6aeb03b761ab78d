"""Evaluation of a pushed model on any folder in the kaggle_3m layout.

Uses the exported `predict_images` signature at the slices' native size and
the metric definitions of `unet4mri.metrics`; the JSON keys are those metrics,
`by_size` (tumor-size bucket -> the per-slice metrics) and `slices`.
"""

import dataclasses
import json
import math
import os

import numpy as np

from data_schema import features
from unet4mri import metrics, slices

PREDICT_SIGNATURE = "predict_images"
PREDICT_TTA_SIGNATURE = "predict_images_tta"


class ModelError(ValueError):
    """A model directory that is not one of our SavedModels."""


def load_predictor(model_dir: str, output: str = "mask", tta: bool = False):
    """The `predict_images` function of a SavedModel: images uint8 [B, H, W, 3] -> `output`
    ('mask': uint8 [B, H, W] in 0/1; 'probabilities': float32 [B, H, W]).
    tta: use `predict_images_tta` (flip test-time augmentation, 4x the passes)."""
    import tensorflow as tf  # heavy: imported when a model is used

    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise ModelError(f"{model_dir}: not a SavedModel (no saved_model.pb)")
    loaded = tf.saved_model.load(model_dir)
    name = PREDICT_TTA_SIGNATURE if tta else PREDICT_SIGNATURE
    if name not in loaded.signatures:
        raise ModelError(f"{model_dir}: SavedModel has no '{name}' signature" + (" (exported before TTA existed?)" if tta else ""))
    signature = loaded.signatures[name]

    def predict(images: np.ndarray) -> np.ndarray:
        return signature(images=tf.constant(images, tf.uint8))[output].numpy()

    predict.saved_model = loaded  # keep the variables alive
    from models.export import MODEL_INFO_FILE

    info = os.path.join(model_dir, "assets.extra", MODEL_INFO_FILE)
    predict.context_slices = 0
    if os.path.isfile(info):
        with open(info) as source:
            predict.context_slices = json.load(source).get("context_slices", 0)
    return predict


def latest_model_dir(serving_dir: str) -> str:
    """The newest version under a Pusher's base directory (or `serving_dir` itself if it is a model)."""
    if os.path.isfile(os.path.join(serving_dir, "saved_model.pb")):
        return serving_dir
    versions = sorted((name for name in os.listdir(serving_dir) if name.isdigit()), key=int) if os.path.isdir(serving_dir) else []
    if not versions:
        raise ModelError(f"{serving_dir}: neither a SavedModel nor a folder of pushed versions")
    return os.path.join(serving_dir, versions[-1])


def group_by_shape(images: list[np.ndarray]) -> list[list[int]]:
    """Indices of `images` grouped by shape: the model takes one size per call."""
    groups: dict[tuple, list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    return list(groups.values())


def predict_counts(predict, pairs: list[slices.SlicePair], batch_size: int = 16) -> list[metrics.SliceCounts]:
    """Per-slice counts of the model's masks against the truth, batched by image size."""
    counts = []
    context = slices.context_paths(pairs, getattr(predict, "context_slices", 0))
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        loaded = [slices.read_pair(pair) for pair in batch]
        inputs = [slices.read_stack(image, context[start + i]) for i, (image, _) in enumerate(loaded)]
        predicted: dict[int, np.ndarray] = {}
        for indices in group_by_shape(inputs):
            masks = predict(np.stack([inputs[i] for i in indices]))
            predicted.update(zip(indices, masks))
        for index, pair in enumerate(batch):
            counts.append(metrics.slice_counts(loaded[index][1], predicted[index], pair.case_id, pair.slice_index))
    return counts


def report(
    counts: list[metrics.SliceCounts],
    small_max_pixels: int = features.DEFAULT_SMALL_MAX_PIXELS,
    medium_max_pixels: int = features.DEFAULT_MEDIUM_MAX_PIXELS,
) -> dict:
    """The evaluation JSON: overall metrics, `by_size` and per-slice rows."""
    result = metrics.summarize(counts)
    by_bucket: dict[str, list[metrics.SliceCounts]] = {}
    for count in counts:
        bucket = features.tumor_size_bucket(count.truth_pixels, small_max_pixels, medium_max_pixels)
        by_bucket.setdefault(bucket, []).append(count)
    result["by_size"] = {
        bucket: {key: value for key, value in metrics.summarize(by_bucket[bucket]).items() if key in metrics.SLICE_METRIC_KEYS}
        for bucket in features.TUMOR_SIZE_BUCKETS
        if bucket in by_bucket
    }
    result["slices"] = [{**dataclasses.asdict(count), "dice": count.dice, "iou": count.iou} for count in counts]
    for row in result["slices"]:
        del row["intersection"]
    return _nan_to_none(result)


def evaluate_model(model_dir: str, data_dir: str, batch_size: int = 16, tta: bool = False) -> dict:
    """Metrics of the model in `model_dir` (a SavedModel or a Pusher base folder) on `data_dir`
    (tta: with flip test-time augmentation)."""
    predict = load_predictor(latest_model_dir(model_dir), tta=tta)
    return report(predict_counts(predict, slices.find_slice_pairs(data_dir), batch_size))


def write_json(result: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(result, out, indent=2, allow_nan=False)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
