"""Shared test helpers: tiny TFRecord files of ingestion examples, a model whose masks are known, and
the inputs TFMA hands the Evaluator's metric."""

import os

import numpy as np
import tensorflow as tf

from components.slice_example_gen.executor import slice_to_example
from core import slices


def write_examples(dataset_dir: str, out_dir: str, case_ids: list[str] | None = None) -> str:
    """GZIP TFRecord of the dataset's slices (optionally only some cases); returns a file pattern."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "data.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for pair in slices.find_slice_pairs(dataset_dir):
            if case_ids is None or pair.case_id in case_ids:
                writer.write(slice_to_example(pair, 300, 1500).SerializeToString())
    return os.path.join(out_dir, "*.gz")


def square_example(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An image whose channels all equal 255 * mask: a geometric transform must keep them equal."""
    mask = np.zeros((size, size, 1), np.float32)
    mask[10:30, 20:44] = 1.0
    return np.repeat(mask * 255.0, 3, axis=-1), mask


def export_red_channel_model(export_dir: str, image_size: int = 32, spec=None, **config_overrides) -> None:
    """Export, as our SavedModel, a network whose tumor mask is `first channel > 127.5`.

    One 1x1 convolution: logit = (channel 0 - 127.5) / 10, the other channels
    ignored. On slices of `image_size` x `image_size` (no resizing) its
    predicted mask is exactly the pixels whose first channel is 255 when the
    image holds only 0 and 255, so metrics on it can be computed by hand.
    spec: its post-processing (core.postprocessing.PostProcessing; None: the default).
    """
    import keras

    from models.config import testing_config
    from models.export import export_serving_model

    config = testing_config(image_size=image_size, **config_overrides)
    inputs = keras.Input((None, None, config.input_channels))
    layer = keras.layers.Conv2D(1, 1)
    network = keras.Model(inputs, layer(inputs))
    kernel = np.zeros((1, 1, config.input_channels, 1), np.float32)
    kernel[0, 0, 0, 0] = 0.1
    layer.set_weights([kernel, np.array([-12.75], np.float32)])
    export_serving_model(network, config, export_dir, spec)


def tfma_metric_inputs(case_id: str, index: int, truth: np.ndarray, probabilities: np.ndarray):
    """One slice as TFMA hands it to `components.tfma_metrics`: truth [H, W] 0/1, probabilities float32 [H, W]."""
    from tensorflow_model_analysis.metrics import metric_types

    return metric_types.StandardMetricInputs(
        labels=np.array([truth.astype(np.uint8).tobytes()], dtype=object),
        predictions={"probabilities": probabilities[None], "mask": (probabilities[None] > 0.5).astype(np.uint8)},
        features={"case_id": np.array([case_id.encode()], dtype=object), "slice_index": np.array([index])},
    )
