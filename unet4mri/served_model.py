"""The served model as `evaluate`, `predict` and the report use it: one client.

`ServedModel.load(path)` takes a SavedModel folder or a Pusher's destination
(the newest complete version in it), reads the model's info file (its context
slices K and the post-processing its signatures apply, `postprocessing`) and
runs it in batches:

- `predict_images(images)`: uint8 [batch, height, width, 3 (2K + 1)] ->
  `Prediction`: the network's probabilities float32 [batch, height, width] and
  the model's post-processed masks uint8 0/1 [batch, height, width] (the
  `predict_images` signature, or `predict_images_tta` with `tta=True`);
- `predict_examples(serialized)`: serialized tf.Examples as ingestion writes
  them -> the same (the `serving_default` signature, which stacks the context
  slices stored in each example itself);
- `predict_pairs(pairs)`: slice files -> (index, image, Prediction of the slice)
  per slice, reading each slice's K neighbours from its folder and grouping
  slices of one size per call;
- `predict_stack(images)`: the slices of one volume, in order, uint8
  [slices, height, width, 3] -> probabilities float32 [slices, height, width],
  each slice with its K neighbours from the stack (the nearest repeated at the
  ends); the volume path resamples them to the scan and post-processes there
  (`core.postprocessing.apply` with `postprocessing`).
"""

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from components.latest_pushed_model import latest_version_dir
from core import contracts, slices
from core.postprocessing import PostProcessing


class ModelError(ValueError):
    """A model directory that is not one of our SavedModels."""


def resolve_model_dir(path: str) -> str:
    """`path` itself if it is a SavedModel, else the newest pushed version under it."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        raise ModelError(f"{path}: neither a SavedModel nor a folder of pushed versions")
    return latest


def read_model_info(model_dir: str) -> dict:
    """The model's info file (`{"context_slices": K, "image_size": S, "postprocessing": {...}, ...}`,
    see core.contracts); {} for models exported without one."""
    info = os.path.join(model_dir, contracts.MODEL_INFO_DIR, contracts.MODEL_INFO_FILE)
    if not os.path.isfile(info):
        return {}
    with open(info) as source:
        return json.load(source)


def group_by_shape(images: list[np.ndarray]) -> list[list[int]]:
    """Indices of `images` grouped by shape: the model takes one size per call."""
    groups: dict[tuple, list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    return list(groups.values())


class Prediction(NamedTuple):
    """What the signatures return: probabilities float32 [batch, H, W] (the network's) and
    mask uint8 0/1 [batch, H, W] (post-processed by the model: `ServedModel.postprocessing`), as the
    signatures name them; a slice of `predict_pairs` holds the same for one slice ([H, W])."""

    probabilities: np.ndarray
    mask: np.ndarray


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """A loaded SavedModel of ours; build it with `ServedModel.load`.

    postprocessing: what the model's `mask` output applies (models exported
    before post-processing: the default, threshold 0.5 and nothing removed).
    postprocessing_choice: how the trainer chose it on the eval patients
    (core.postprocessing.Choice.to_dict), or None.
    """

    path: str
    context_slices: int
    tta: bool
    _loaded: object  # the tf.saved_model object: keeps the variables alive
    postprocessing: PostProcessing = PostProcessing()
    postprocessing_choice: dict | None = None

    @classmethod
    def load(cls, path: str, tta: bool = False) -> "ServedModel":
        """tta: use flip test-time augmentation (`predict_images_tta`, 4x the network passes)."""
        import tensorflow as tf  # heavy: loaded only when a model is used

        model_dir = resolve_model_dir(path)
        loaded = tf.saved_model.load(model_dir)
        wanted = [contracts.SERVING_SIGNATURE, contracts.IMAGES_TTA_SIGNATURE if tta else contracts.IMAGES_SIGNATURE]
        for name in wanted:
            if name not in loaded.signatures:
                hint = " (exported before TTA existed?)" if name == contracts.IMAGES_TTA_SIGNATURE else ""
                raise ModelError(f"{model_dir}: SavedModel has no '{name}' signature{hint}")
        info = read_model_info(model_dir)
        return cls(
            path=model_dir,
            context_slices=int(info.get(contracts.INFO_CONTEXT_SLICES, 0)),
            tta=tta,
            _loaded=loaded,
            postprocessing=PostProcessing.from_dict(info.get(contracts.INFO_POSTPROCESSING)),
            postprocessing_choice=info.get(contracts.INFO_POSTPROCESSING_CHOICE),
        )

    def predict_images(self, images: np.ndarray) -> Prediction:
        """images uint8 [batch, height, width, 3 (2K + 1)] -> Prediction (probabilities and mask [batch, height, width])."""
        import tensorflow as tf

        signature = self._loaded.signatures[contracts.IMAGES_TTA_SIGNATURE if self.tta else contracts.IMAGES_SIGNATURE]
        return _prediction(signature(**{contracts.IMAGES_INPUT: tf.constant(images, tf.uint8)}))

    def predict_examples(self, serialized) -> Prediction:
        """Serialized tf.Examples (string [batch], one slice size) -> Prediction (probabilities and mask [batch, height, width])."""
        import tensorflow as tf

        signature = self._loaded.signatures[contracts.SERVING_SIGNATURE]
        return _prediction(signature(**{contracts.EXAMPLES_INPUT: tf.constant(serialized, tf.string)}))

    def predict_pairs(
        self,
        pairs: list[slices.SlicePair],
        batch_size: int = 16,
        read_image: Callable[[str], np.ndarray] = slices.read_any_image,
    ) -> Iterator[tuple[int, np.ndarray, Prediction]]:
        """(index into `pairs`, image uint8 [H, W, 3], Prediction of the slice: probabilities float32 [H, W]
        and mask uint8 [H, W]) for every slice, batch by batch; `pairs` sorted by case and slice
        (the neighbours come from that order)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        context = slices.context_paths(pairs, self.context_slices)
        for start in range(0, len(pairs), batch_size):
            images = [read_image(pair.image_path) for pair in pairs[start : start + batch_size]]
            inputs = [slices.read_stack(image, context[start + i]) for i, image in enumerate(images)]
            for indices in group_by_shape(inputs):
                predicted = self.predict_images(np.stack([inputs[i] for i in indices]))
                for i, probabilities, mask in zip(indices, predicted.probabilities, predicted.mask):
                    yield start + i, images[i], Prediction(probabilities, mask)

    def predict_stack(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """images uint8 [slices, H, W, 3] of one volume, in slice order -> probabilities float32 [slices, H, W]."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        offsets = [0, *range(-self.context_slices, 0), *range(1, self.context_slices + 1)]
        last = len(images) - 1
        out = np.empty(images.shape[:3], np.float32)
        for start in range(0, len(images), batch_size):
            indices = range(start, min(start + batch_size, len(images)))
            batch = np.stack([np.concatenate([images[min(max(i + o, 0), last)] for o in offsets], axis=2) for i in indices])
            out[start : start + len(batch)] = self.predict_images(batch).probabilities
        return out


def _prediction(outputs: dict) -> Prediction:
    return Prediction(outputs[contracts.PROBABILITIES].numpy(), outputs[contracts.MASK_OUTPUT].numpy())
