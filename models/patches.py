"""Patch sampling for training at full resolution, and sliding-window inference with Gaussian blending.

Small tumors vanish when a whole slice is shrunk to fit the network, and a
few dozen tumor pixels barely move a loss averaged over 256x256. Training on
P x P crops of the full-resolution slice, a share of them centered on tumor,
shows the network small lesions at their own scale for the cost of a crop
(nnU-Net, Isensee et al. 2021, samples foreground patches the same way). The
network is fully convolutional, so it predicts whole slices; where a slice is
too large for memory, `sliding_window_probabilities` tiles it.
"""

import math

import tensorflow as tf


def sample_patch(image, mask, seed, patch_size: int, tumor_patch_fraction: float):
    """A patch_size x patch_size crop of (image [H, W, C], mask [H, W, 1]).

    With probability `tumor_patch_fraction` (and a tumor in the mask) the crop
    is centered on a random tumor pixel, jittered by up to a quarter of the
    patch each way; otherwise its position is uniform. Crops stay inside the
    slice. seed: int32 [2] for the stateless random ops.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    tumor = tf.where(mask[..., 0] > 0)  # [N, 2] (row, column)
    centered = tf.logical_and(tf.random.stateless_uniform([], seeds[0]) < tumor_patch_fraction, tf.shape(tumor)[0] > 0)

    def around_tumor():
        pick = tf.random.stateless_uniform([], seeds[1], 0, tf.maximum(tf.shape(tumor)[0], 1), dtype=tf.int32)
        jitter = tf.random.stateless_uniform([2], seeds[2], -(patch_size // 4), patch_size // 4 + 1, dtype=tf.int32)
        return tf.cast(tumor[pick], tf.int32) + jitter - patch_size // 2

    def uniform():
        positions = tf.stack([height - patch_size + 1, width - patch_size + 1])
        return tf.random.stateless_uniform([2], seeds[3], 0, 2**30, dtype=tf.int32) % positions

    corner = tf.cond(centered, around_tumor, uniform)
    corner = tf.clip_by_value(corner, 0, tf.stack([height - patch_size, width - patch_size]))
    return (
        tf.slice(image, [corner[0], corner[1], 0], [patch_size, patch_size, -1]),
        tf.slice(mask, [corner[0], corner[1], 0], [patch_size, patch_size, -1]),
    )


def gaussian_weights(window: int, sigma_fraction: float = 0.125) -> tf.Tensor:
    """float32 [window, window, 1]: a Gaussian of sigma = window * sigma_fraction centered
    on the window, scaled to a maximum of 1 and floored at 1e-3 (so the
    corners of tiles still count where only they cover a pixel)."""
    coordinates = tf.range(window, dtype=tf.float32) - (window - 1) / 2.0
    profile = tf.exp(-0.5 * tf.square(coordinates / (window * sigma_fraction)))
    weights = profile[:, None] * profile[None, :]
    return tf.maximum(weights / tf.reduce_max(weights), 1e-3)[..., None]


def tile_starts(length, window: int, overlap: float):
    """Start offsets of windows covering [0, length): a stride of window * (1 - overlap),
    the last window flush with the end."""
    stride = max(int(math.floor(window * (1.0 - overlap))), 1)
    count = tf.maximum(tf.cast(tf.math.ceil(tf.cast(length - window, tf.float32) / stride), tf.int32), 0) + 1
    return tf.minimum(tf.range(count) * stride, tf.maximum(length - window, 0))


def sliding_window_probabilities(network, images, window: int, overlap: float = 0.5):
    """Tumor probabilities float32 [B, H, W, 1] of images float32 [B, H, W, C] by
    `window` x `window` tiles overlapping by `overlap`, whose sigmoid outputs
    are averaged with Gaussian weights (the tile centers count most, where the
    network saw the most context). H and W must be multiples of the network's
    down-sampling factor when smaller than the window."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows, columns = tile_starts(height, window, overlap), tile_starts(width, window, overlap)
    weights = gaussian_weights(window)
    tiles = tf.size(rows) * tf.size(columns)

    def add_tile(index, total, norm):
        row, column = rows[index // tf.size(columns)], columns[index % tf.size(columns)]
        tile = images[:, row : row + window, column : column + window, :]
        tile_height, tile_width = tf.shape(tile)[1], tf.shape(tile)[2]
        tile_weights = weights[:tile_height, :tile_width]
        probabilities = tf.sigmoid(tf.cast(network(tile, training=False), tf.float32)) * tile_weights
        padding = [[0, 0], [row, height - row - tile_height], [column, width - column - tile_width], [0, 0]]
        return index + 1, total + tf.pad(probabilities, padding), norm + tf.pad(tile_weights[None], padding)

    # An explicit loop: callers such as Keras' ExportArchive trace without AutoGraph.
    _, total, norm = tf.while_loop(
        lambda index, *_: index < tiles,
        add_tile,
        (tf.constant(0), tf.zeros_like(images[..., :1]), tf.zeros_like(images[:1, ..., :1])),
    )
    return total / norm
