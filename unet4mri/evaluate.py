"""Evaluation of a pushed model on a folder in the kaggle_3m layout or of BraTS-style volumes.

Uses the exported `predict_images` signature (through `served_model`) at the slices' native size,
scores its post-processed `mask` output (as the Evaluator does) with the
metric definitions of `core.metrics`. Every JSON has `postprocessing` (the
steps the model applies: core.postprocessing.PostProcessing.to_dict) and, when
the trainer chose them, `postprocessing_choice` (the eval-patient metrics
before and after, and the grid searched). On TIFF slices the other keys are
those metrics, `by_size` (tumor-size bucket -> the per-slice metrics) and
`slices`. On volumes (`evaluate_volumes`), every case is predicted as
`unet4mri predict` does and scored in 3D at its native resolution: the keys
are `core.metrics.VOLUME_METRIC_KEYS` (per-patient Dice, HD95 in mm, absolute
volume error in mL: mean and median over patients with tumor) and `patients`
(one row per case, with both volumes in mL).
"""

import dataclasses
import json
import math
import os

from core import contracts, metrics, slices, volumes
from data_schema import features
from unet4mri.served_model import ServedModel
from unet4mri.volume_prediction import predict_case


def predict_counts(model: ServedModel, pairs: list[slices.SlicePair], batch_size: int = 16) -> list[metrics.SliceCounts]:
    """Per-slice counts of the model's (post-processed) masks against the truth, in `pairs` order."""
    counts: list[metrics.SliceCounts | None] = [None] * len(pairs)
    for index, image, predicted in model.predict_pairs(pairs, batch_size, read_image=slices.read_image):
        pair = pairs[index]
        truth = slices.read_mask(pair.mask_path, image.shape[:2])
        counts[index] = metrics.slice_counts(truth, predicted.mask, pair.case_id, pair.slice_index)
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
    model = ServedModel.load(model_dir, tta=tta)
    return {**report(predict_counts(model, slices.find_slice_pairs(data_dir), batch_size)), **postprocessing_applied(model)}


def postprocessing_applied(model: ServedModel) -> dict:
    """The JSON keys that say which post-processing the scored masks had and how it was chosen."""
    applied = {contracts.INFO_POSTPROCESSING: model.postprocessing.to_dict()}
    if model.postprocessing_choice is not None:
        applied[contracts.INFO_POSTPROCESSING_CHOICE] = model.postprocessing_choice
    return applied


def evaluate_volumes(
    model_dir: str, data_dir: str, batch_size: int = 16, tta: bool = False, layout: volumes.VolumeLayout = volumes.DEFAULT_LAYOUT
) -> dict:
    """3D metrics of the model on the labelled volume cases under `data_dir` (see the module docstring);
    VolumeError naming the file for a case without its label or that cannot be read."""
    cases, problems = volumes.find_volume_cases(data_dir, layout, labels_required=True)
    if problems:
        raise volumes.VolumeError(problems[0][1])
    model = ServedModel.load(model_dir, tta=tta)
    patients = []
    for case in cases:
        loaded = volumes.load_case(case, layout)
        *_, predicted = predict_case(model, loaded, batch_size=batch_size)
        patients.append(metrics.volume_metrics(loaded.mask, predicted, loaded.spacing_mm, case.case_id))
    return _nan_to_none({**metrics.summarize_volumes(patients), "patients": patients, **postprocessing_applied(model)})


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
