"""Export of the trained network as a SavedModel with three signatures.

- `serving_default`: serialized `tf.train.Example`s (string [batch], the
  ingestion's features; all examples of one call share one height and width)
  -> `probabilities` float32 [batch, height, width] (the network's, raw) and
  `mask` uint8 [batch, height, width] in 0/1 (post-processed), at the
  examples' own size.
- `predict_images`: `images` uint8 [batch, height, width, 3 (2K + 1)] of any
  height and width -> the same outputs at the input size. K is the number of
  context slices (K = 0: 3 channels): the slice, then the K slices below and
  the K above (see data_schema.features `context`); K is recorded in
  `assets.extra/unet4mri.json`.
- `predict_images_tta`: the same with test-time augmentation: the mean of the
  probabilities over the identity, left-right, up-down and both flips (4
  network passes, so about 4x the time of `predict_images`).

With `inference_window` smaller than the training size, the network runs on
overlapping tiles blended with Gaussian weights (models.patches).

Contract: a wrong dtype, rank or channel count, or an empty batch, fails with
an InvalidArgumentError whose message names the input and what was expected
("Shape of tensor images [1,32,32,4] is not compatible with expected shape
[?,?,?,3]"); any height and width (1x1 included) are accepted. All
signatures resize the slices to the training size, run the network, resize the
logits back to the input size and apply the sigmoid there (a sharper outline
than resizing probabilities), then post-process the probabilities into the
mask at the input size (`core.postprocessing`: threshold, then small
8-connected components removed per slice; the spec is recorded in the info
file). The model loads with plain `tf.saved_model.load` in a process that has
never imported this project.
"""

import json
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from core.contracts import (
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    IMAGES_TTA_SIGNATURE,
    INFO_CONTEXT_SLICES,
    INFO_IMAGE_SIZE,
    INFO_POSTPROCESSING,
    INFO_POSTPROCESSING_CHOICE,
    MASK_OUTPUT,
    MODEL_INFO_DIR,
    MODEL_INFO_FILE,
    PROBABILITIES,
    SERVING_SIGNATURE,
)
from core.postprocessing import Choice, PostProcessing
from models import input_pipeline, patches, postprocessing
from models.config import TrainingConfig
from models.networks import inference_model

TTA_FLIPS = ((), (2,), (1,), (1, 2))  # none, left-right, up-down, both: 4 network passes


def serving_functions(network: keras.Model, config: TrainingConfig, spec: PostProcessing) -> dict[str, Callable]:
    """The signatures' functions by signature name, around `network` (the inference network):
    what the SavedModel runs, for the export and for the trainer's predictions on the eval split."""
    tiled = config.inference_window is not None and config.inference_window < config.image_size

    def logits_at_training_size(resized, tta: bool):
        """float32 [B, S, S, 3 (2K + 1)] at the training size -> tumor logits [B, S, S, 1]."""
        if not tta and not tiled:
            return network(resized, training=False)

        def tumor_probabilities(x):
            if tiled:
                return patches.sliding_window_probabilities(network, x, config.inference_window)
            return tf.sigmoid(network(x, training=False))

        flips = TTA_FLIPS if tta else ((),)
        averaged = tf.add_n([tf.reverse(tumor_probabilities(tf.reverse(resized, axes)), axes) for axes in flips]) / len(flips)
        averaged = tf.clip_by_value(averaged, 1e-7, 1.0 - 1e-7)
        return tf.math.log(averaged) - tf.math.log(1.0 - averaged)  # back to logits, resized below like the network's

    def predict_images(images, tta: bool = False):
        # The signature accepts any shape so that this check runs when the model
        # is called, with a message naming the tensor, its shape and the one
        # expected (the signature wrapper itself checks only the dtype).
        images = tf.ensure_shape(images, [None, None, None, config.input_channels])
        tf.debugging.assert_positive(tf.reduce_prod(tf.shape(images)[:3]), message="images must hold at least one slice of at least 1x1")
        output_size = tf.shape(images)[1:3]
        resized = tf.image.resize(tf.cast(images, tf.float32), [config.image_size, config.image_size], method="area")
        logits = tf.image.resize(logits_at_training_size(resized, tta), output_size, method="bilinear")
        probabilities = tf.sigmoid(logits[..., 0])
        return {PROBABILITIES: probabilities, MASK_OUTPUT: postprocessing.postprocess(probabilities, spec)}

    def serve_examples(examples):
        examples = tf.ensure_shape(examples, [None])
        images, _ = input_pipeline.parse_examples(examples, with_masks=False, context_slices=config.context_slices)
        return predict_images(images)

    return {
        IMAGES_SIGNATURE: predict_images,
        IMAGES_TTA_SIGNATURE: lambda images: predict_images(images, tta=True),
        SERVING_SIGNATURE: serve_examples,
    }


INPUT_SPECS = {
    IMAGES_SIGNATURE: tf.TensorSpec(None, tf.uint8, name=IMAGES_INPUT),
    IMAGES_TTA_SIGNATURE: tf.TensorSpec(None, tf.uint8, name=IMAGES_INPUT),
    SERVING_SIGNATURE: tf.TensorSpec(None, tf.string, name=EXAMPLES_INPUT),
}


def export_serving_model(
    model: keras.Model,
    config: TrainingConfig,
    export_dir: str,
    spec: PostProcessing | None = None,
    choice: Choice | None = None,
) -> None:
    """Write the SavedModel of `model` (the training network) to `export_dir`, its masks
    post-processed with `spec` (None: the default, threshold 0.5 and nothing removed);
    `choice`, how the trainer chose it, is recorded beside it."""
    spec = spec or PostProcessing()
    network = inference_model(model, config)
    archive = keras.export.ExportArchive()
    archive.track(network)
    for name, function in serving_functions(network, config, spec).items():
        archive.add_endpoint(name, function, input_signature=[INPUT_SPECS[name]])
    archive.write_out(export_dir, verbose=False)
    # What a caller needs to build the input and report the masks (ignored by model servers).
    info = {INFO_CONTEXT_SLICES: config.context_slices, INFO_IMAGE_SIZE: config.image_size, INFO_POSTPROCESSING: spec.to_dict()}
    if choice is not None:
        info[INFO_POSTPROCESSING_CHOICE] = choice.to_dict()
    tf.io.gfile.makedirs(os.path.join(export_dir, MODEL_INFO_DIR))
    with tf.io.gfile.GFile(os.path.join(export_dir, MODEL_INFO_DIR, MODEL_INFO_FILE), "w") as out:
        json.dump(info, out)
