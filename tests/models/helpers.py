"""Tiny TFRecord files of ingestion examples, for model tests."""

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
