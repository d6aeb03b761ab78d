"""The post-processing of `core.postprocessing` in TensorFlow ops, for the SavedModel's signatures.

Connected components without tensorflow-addons: every foreground pixel starts
with its own label (its index in the slice + 1; background 0), then, until no
label changes, each pixel takes the largest label in its 3 x 3 neighbourhood
(8-connectivity; background stays 0) and then the label of the pixel its
label points to (pointer jumping: a chain of n pixels settles in far fewer
than n steps, which a spiral needs). At the fixed point each component
carries the index + 1 of its last pixel; component sizes are a segment sum
over (slice, label). The tests check the result against scipy.ndimage.label
with the same connectivity.
"""

import tensorflow as tf

from core.postprocessing import PostProcessing


def _neighbourhood_max(labels: tf.Tensor) -> tf.Tensor:
    """int32 [B, H, W] -> the max over each pixel's 3 x 3 neighbourhood (outside the slice: 0), separably."""
    padded = tf.pad(labels, [[0, 0], [1, 1], [0, 0]])
    rows = tf.maximum(tf.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    padded = tf.pad(rows, [[0, 0], [0, 0], [1, 1]])
    return tf.maximum(tf.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])


def component_labels(masks: tf.Tensor) -> tf.Tensor:
    """bool [B, H, W] -> int32 [B, H, W]: 0 on background, on each 8-connected component (per
    slice) the index + 1 of one of its pixels (so labels differ between the components of a slice)."""
    shape = tf.shape(masks)
    pixels = shape[1] * shape[2]
    foreground = tf.cast(masks, tf.int32)
    initial = tf.reshape(tf.range(1, pixels + 1, dtype=tf.int32), [1, shape[1], shape[2]]) * foreground

    def step(labels):
        grown = _neighbourhood_max(labels) * foreground
        flat = tf.reshape(grown, [shape[0], pixels])
        # Pointer jumping: label - 1 is a pixel of the same component whose label is never smaller.
        jumped = tf.gather(flat, tf.maximum(flat - 1, 0), batch_dims=1) * tf.reshape(foreground, [shape[0], pixels])
        return tf.reshape(jumped, shape)

    def changing(labels, previous):
        return tf.reduce_any(tf.not_equal(labels, previous))

    first = step(initial)
    any_shape = tf.TensorShape([None, None, None])
    labels, _ = tf.while_loop(
        changing, lambda labels, previous: (step(labels), labels), (first, initial), shape_invariants=(any_shape, any_shape)
    )
    return labels


def remove_small_components(masks: tf.Tensor, min_component_pixels: int) -> tf.Tensor:
    """bool [B, H, W] -> bool [B, H, W] without the 8-connected components (per slice) of fewer pixels."""
    if min_component_pixels <= 0:  # nothing to remove: no loop in the graph
        return masks
    labels = component_labels(masks)
    shape = tf.shape(masks)
    pixels = shape[1] * shape[2]
    # One segment per (slice, label): label 0 (background) of every slice included.
    segments = labels + tf.range(shape[0], dtype=tf.int32)[:, None, None] * (pixels + 1)
    sizes = tf.math.unsorted_segment_sum(tf.ones_like(segments), segments, shape[0] * (pixels + 1))
    return tf.logical_and(masks, tf.gather(sizes, segments) >= min_component_pixels)


def postprocess(probabilities: tf.Tensor, spec: PostProcessing) -> tf.Tensor:
    """probabilities float32 [B, H, W] -> the mask uint8 0/1 [B, H, W] (core.postprocessing's definition)."""
    return tf.cast(remove_small_components(probabilities > spec.threshold, spec.min_component_pixels), tf.uint8)
