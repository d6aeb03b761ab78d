"""Hard negatives: tumor-free training slices that the sampler shows more often (issue 14).

The pool is the tumor-free slices of the train split (tumor-free at the training
size, as the input pipeline decides) that are
- at either end of their volume: among the lowest or highest
  ceil(END_OF_VOLUME_FRACTION x n) of the n slice indices of their case (10 %,
  at least one slice per end: 2 of a 20-slice kaggle_3m case, 9 of an 88-slice
  one), where skull base, sinuses, eyes and vertex look least like the brain
  around a tumor; these stay in the pool for the whole run;
- or predicted with any tumor pixel (a logit > 0, models.segmentation_metrics'
  threshold) by the network at the end of the previous epoch (HardNegativeMiner).

`HardNegativePool.stream` draws uniformly among the slices in the pool, reading
the pool's flags at every draw, so an update is seen by the next slice drawn
apart from those tf.data has already prefetched; when the pool is empty it draws
among all tumor-free slices, so it never stalls. models.input_pipeline mixes it
into the tumor-free part of each batch (`hard_negative_fraction`). How many
draws were prefetched when the flags change depends on thread timing (0 to 8
in tests/models/test_hard_negatives.py), so, on, two runs with one seed can
differ by a few slices after the first epoch; off, nothing changes.

Memory: the tumor-free train slices are held decoded at the training size on the
host, float32 [N, S, S, 3 (2K + 1)], N x S x S x C x 4 bytes: 300 slices at
128 px with 3 channels take 59 MB; all of kaggle_3m's 2,556 tumor-free slices
(its train split holds its share of them) would take 0.50 GB at 128 px and
2.0 GB at 256 px, times 2K + 1 with K context slices. This is on top of the
input pipeline's cache of every slice. The miner predicts them all once per
epoch (one pass of the network over N slices, like a validation pass).
"""

import dataclasses
import logging
import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from data_schema import features
from models import input_pipeline
from models.config import TrainingConfig
from models.segmentation_metrics import LOGIT_THRESHOLD

END_OF_VOLUME_FRACTION = 0.1
POOL_LOG_KEY = "hard_negative_pool"  # the training-log key: slices in the pool after the epoch (the next epoch's)


def end_of_volume(case_ids: np.ndarray, slice_indices: np.ndarray, fraction: float = END_OF_VOLUME_FRACTION) -> np.ndarray:
    """bool [n] per slice: whether it is among the ceil(fraction x m) lowest or highest of the m
    slice indices of its case (at least one per end). case_ids: [n] (any hashable values), slice_indices: int [n];
    all slices of each case must be given (the ends are taken from them)."""
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
    case_ids, slice_indices = np.asarray(case_ids), np.asarray(slice_indices)
    ends = np.zeros(len(slice_indices), bool)
    for case in np.unique(case_ids):
        members = np.flatnonzero(case_ids == case)
        rank = np.argsort(np.argsort(slice_indices[members], kind="stable"), kind="stable")  # 0 = lowest slice
        per_end = max(1, math.ceil(fraction * len(members)))
        ends[members] = (rank < per_end) | (rank >= len(members) - per_end)
    return ends


@dataclasses.dataclass(frozen=True)
class HardNegativePool:
    """The tumor-free slices and which of them are in the pool.

    images: float32 [N, S, S, C], raw 0..255 intensities as the input pipeline's, in a CPU
      variable (tf.data reads it by handle; a constant that large would be copied into the dataset's graph);
    ends: bool [N], the end-of-volume slices (always in the pool);
    flags: float32 [N] variable on the CPU, 1 for the slices in the pool.
    """

    images: tf.Variable
    ends: np.ndarray
    flags: tf.Variable

    @classmethod
    def from_arrays(cls, images: np.ndarray, ends: np.ndarray) -> "HardNegativePool":
        """A pool of the slices `images` (float32 [N, S, S, C]) holding the `ends` (bool [N]) to start with."""
        ends = np.asarray(ends, bool)
        if len(images) == 0 or len(images) != len(ends):
            raise ValueError(f"a pool needs one or more slices and one end flag per slice, got {len(images)} and {len(ends)}")
        with tf.device("/cpu:0"):  # tf.data runs on the CPU and reads both
            variables = tf.Variable(images, trainable=False, dtype=tf.float32), tf.Variable(ends.astype(np.float32), trainable=False)
        return cls(variables[0], ends, variables[1])

    @property
    def size(self) -> int:
        """Slices in the pool now."""
        return int(np.sum(self.flags.numpy() > 0))

    def update(self, fired: np.ndarray) -> int:
        """The pool becomes the ends and the slices where `fired` (bool [N]); returns its size."""
        self.flags.assign((self.ends | np.asarray(fired, bool)).astype(np.float32))
        return self.size

    def stream(self, seed: int) -> tf.data.Dataset:
        """Endless (image float32 [S, S, C], mask float32 [S, S, 1] of zeros), each drawn uniformly among the
        slices in the pool at the time of the draw (among all slices while the pool is empty)."""
        size, channels = self.images.shape[1], self.images.shape[3]

        def draw(seed_pair):
            flags = self.flags.read_value()
            logits = tf.where(tf.reduce_any(flags > 0), tf.math.log(flags), tf.zeros_like(flags))  # log 0 = -inf: never drawn
            index = tf.random.stateless_categorical(logits[tf.newaxis], 1, seed=seed_pair)[0, 0]
            image = tf.ensure_shape(tf.gather(self.images, index), [size, size, channels])  # reads one slice, not the variable
            return image, tf.zeros([size, size, 1], tf.float32)

        return tf.data.Dataset.random(seed=seed).batch(2).map(draw)

    def fired(self, predict: Callable, batch_size: int) -> np.ndarray:
        """bool [N]: the slices on which `predict` (images [B, S, S, C] -> logits [B, S, S, 1], or a list of
        them per head, the deepest last) has any tumor pixel."""
        count, fired = int(self.images.shape[0]), []
        for start in range(0, count, batch_size):
            outputs = predict(tf.gather(self.images, tf.range(start, min(start + batch_size, count))))
            logits = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
            fired.append(tf.reduce_any(tf.cast(logits, tf.float32) > LOGIT_THRESHOLD, axis=[1, 2, 3]).numpy())
        return np.concatenate(fired)


def load_pool(file_patterns: list[str], config: TrainingConfig) -> HardNegativePool | None:
    """The pool of the tumor-free slices of the files (decoded and resized as models.input_pipeline
    does) with their volume ends in it; None when no slice is tumor-free."""
    spec = {features.CASE_ID: tf.io.FixedLenFeature([], tf.string), features.SLICE_INDEX: tf.io.FixedLenFeature([], tf.int64)}
    case_ids, slice_indices, tumor_free, images = [], [], [], []
    records = tf.data.TFRecordDataset(input_pipeline.record_files(file_patterns), compression_type="GZIP")
    for serialized in records.batch(64):
        keys = tf.io.parse_example(serialized, spec)
        batch_images, masks = input_pipeline.resize_pair(
            *input_pipeline.parse_examples(serialized, context_slices=config.context_slices), config.image_size
        )
        empty = np.logical_not(np.any(masks.numpy() > 0, axis=(1, 2, 3)))
        case_ids += keys[features.CASE_ID].numpy().tolist()
        slice_indices += keys[features.SLICE_INDEX].numpy().tolist()
        tumor_free.append(empty)
        images.append(batch_images.numpy()[empty])
    if not case_ids or not np.concatenate(tumor_free).any():
        return None
    tumor_free = np.concatenate(tumor_free)
    ends = end_of_volume(np.array(case_ids, object), np.array(slice_indices))[tumor_free]
    pool = HardNegativePool.from_arrays(np.concatenate(images), ends)
    logging.info(
        "hard negatives: %d tumor-free train slices (%.1f MB), %d at the volume ends in the pool",
        len(ends),
        pool.images.shape.num_elements() * 4 / 1e6,
        pool.size,
    )
    return pool


class HardNegativeMiner(keras.callbacks.Callback):
    """At each epoch's end, predicts every slice of `pool` with `network` (the bare network, training=False:
    no dropout, no augmentation) and makes the pool its ends plus the slices with a tumor pixel; the pool's
    size goes into the epoch's logs as POOL_LOG_KEY (so into the history) and the log.

    Place it before callbacks that record the logs. A resumed run starts again from the ends.
    """

    def __init__(self, pool: HardNegativePool, network: keras.Model, batch_size: int):
        super().__init__()
        self.pool, self.batch_size = pool, batch_size
        self.predict = tf.function(lambda images: network(images, training=False), reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        size = self.pool.update(self.pool.fired(self.predict, self.batch_size))
        if logs is not None:
            logs[POOL_LOG_KEY] = float(size)
        logging.info("epoch %d: %d of %d tumor-free train slices in the hard-negative pool", epoch + 1, size, len(self.pool.ends))
