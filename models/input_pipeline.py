"""The tf.data input pipeline: parse, resize, cache, oversample, batch.

Examples are the ingestion's `tf.train.Example`s (see data_schema.features) in
GZIP TFRecord files. Batches are (images float32 [batch, size, size, 3 (2K + 1)]
with raw 0..255 intensities, K the context slices, masks float32 [batch, size, size, 1] in 0/1).
Augmentation is not done here but in the training step, on the accelerator
(models.augmentation, models.training_model).
"""

import tensorflow as tf

from data_schema import features
from models import patches
from models.config import TrainingConfig

AUTOTUNE = tf.data.AUTOTUNE


def parse_examples(serialized, with_masks: bool = True, context_slices: int = 0):
    """Batch of serialized examples -> (images uint8 [B, H, W, 3 (2K + 1)], masks uint8 [B, H, W, 1] or None).

    All examples of a batch must share one height and width. K = context_slices:
    the slice's channels come first, then its `context` feature's.
    """
    spec = {
        features.IMAGE: tf.io.FixedLenFeature([], tf.string),
        features.HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        features.WIDTH: tf.io.FixedLenFeature([], tf.int64),
    }
    if with_masks:
        spec[features.MASK] = tf.io.FixedLenFeature([], tf.string)
    if context_slices:
        spec[features.CONTEXT] = tf.io.FixedLenFeature([], tf.string)
    parsed = tf.io.parse_example(serialized, spec)
    height, width = tf.cast(parsed[features.HEIGHT][0], tf.int32), tf.cast(parsed[features.WIDTH][0], tf.int32)
    images = tf.reshape(tf.io.decode_raw(parsed[features.IMAGE], tf.uint8), [-1, height, width, 3])
    if context_slices:
        context = tf.reshape(tf.io.decode_raw(parsed[features.CONTEXT], tf.uint8), [-1, height, width, 6 * context_slices])
        images = tf.concat([images, context], axis=-1)
    if not with_masks:
        return images, None
    masks = tf.reshape(tf.io.decode_raw(parsed[features.MASK], tf.uint8), [-1, height, width, 1])
    return images, masks


def resize_pair(images, masks, size: int):
    """Images to float32 [.., size, size, channels] (area-averaged), masks to 0/1 float32 [.., size, size, 1]."""
    images = tf.image.resize(tf.cast(images, tf.float32), [size, size], method="area")
    masks = tf.image.resize(tf.cast(masks, tf.float32), [size, size], method="area")
    return images, tf.cast(masks >= 0.5, tf.float32)


def _decoded(file_patterns: list[str], size: int, context_slices: int = 0) -> tf.data.Dataset:
    records = tf.data.TFRecordDataset(record_files(file_patterns), compression_type="GZIP", num_parallel_reads=AUTOTUNE)
    return (
        records.batch(64)
        .map(lambda serialized: resize_pair(*parse_examples(serialized, context_slices=context_slices), size), num_parallel_calls=AUTOTUNE)
        .unbatch()
        .cache()
    )


def count_slices(file_patterns: list[str]) -> tuple[int, int]:
    """(slices, tumor slices) in the files, read once."""
    total = tumor = 0
    for batch in tf.data.TFRecordDataset(record_files(file_patterns), compression_type="GZIP").batch(256):
        _, masks = parse_examples(batch)
        total += int(masks.shape[0])
        tumor += int(tf.reduce_sum(tf.cast(tf.reduce_any(masks > 0, axis=[1, 2, 3]), tf.int32)))
    return total, tumor


def record_files(file_patterns: list[str]) -> list[str]:
    """The files the patterns match, sorted; a ValueError when none does."""
    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no TFRecord files match {file_patterns}")
    return files


def training_dataset(
    file_patterns: list[str], config: TrainingConfig, oversample: bool = True, hard_negatives: tf.data.Dataset | None = None
) -> tf.data.Dataset:
    """Endless batches: tumor slices oversampled to `tumor_slice_fraction`, shuffled,
    and cropped to `patch_size` patches when set (see models.patches).

    oversample: False when the data lacks tumor or empty slices (sampling from
    an empty class would never yield).
    hard_negatives: an endless stream of tumor-free (image, mask) slices at the
      training size (models.hard_negatives.HardNegativePool.stream); with
      oversampling and `hard_negative_fraction` > 0, that share of the
      tumor-free part of each batch is drawn from it. None, or a fraction of 0:
      the batches of a run without it, draw for draw.
    """
    decoded = _decoded(file_patterns, config.image_size, config.context_slices)
    has_tumor = lambda image, mask: tf.reduce_any(mask > 0)  # noqa: E731
    tumor = decoded.filter(has_tumor).repeat().shuffle(512, seed=config.seed)
    empty = decoded.filter(lambda image, mask: tf.logical_not(has_tumor(image, mask))).repeat().shuffle(512, seed=config.seed + 1)
    tumor_share, hard_share = config.tumor_slice_fraction, config.hard_negative_fraction
    if oversample and tumor_share > 0 and hard_negatives is not None and hard_share > 0:
        mixed = tf.data.Dataset.sample_from_datasets(
            [tumor, empty, hard_negatives],
            weights=[tumor_share, (1.0 - tumor_share) * (1.0 - hard_share), (1.0 - tumor_share) * hard_share],
            seed=config.seed,
        )
    elif oversample and tumor_share > 0:  # unchanged since before hard negatives: same draws, same batches
        mixed = tf.data.Dataset.sample_from_datasets([tumor, empty], weights=[tumor_share, 1.0 - tumor_share], seed=config.seed)
    else:
        mixed = decoded.repeat().shuffle(1024, seed=config.seed)
    batches = mixed.batch(config.batch_size, drop_remainder=True)
    if config.patch_size:
        seeds = tf.data.Dataset.random(seed=config.seed + 2).batch(2)
        crops = tf.data.Dataset.zip((batches.unbatch(), seeds)).map(
            lambda pair, seed: patches.sample_patch(*pair, seed, config.patch_size, config.tumor_patch_fraction),
            num_parallel_calls=AUTOTUNE,
        )
        batches = crops.batch(config.batch_size, drop_remainder=True)
    return batches.prefetch(AUTOTUNE)


def evaluation_dataset(file_patterns: list[str], config: TrainingConfig) -> tf.data.Dataset:
    """Every slice once, in file order, resized, batched."""
    return _decoded(file_patterns, config.image_size, config.context_slices).batch(config.batch_size).prefetch(AUTOTUNE)
