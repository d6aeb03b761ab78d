"""The TensorFlow post-processing against scipy.ndimage.label (core.postprocessing), exactly."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from core import postprocessing as reference
from models import postprocessing


def spiral(size: int) -> np.ndarray:
    """A one-pixel-wide maze of nested square rings, each joined to the next by one pixel: one long, thin component."""
    mask = np.zeros((size, size), bool)
    top, left, bottom, right = 0, 0, size - 1, size - 1
    while top <= bottom and left <= right:
        mask[top, left : right + 1] = True
        mask[top : bottom + 1, right] = True
        if top + 2 <= bottom:
            mask[bottom, left : right + 1] = True
        if left + 2 <= right and top + 2 <= bottom:
            mask[top + 2 : bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            mask[top - 1, left] = True  # the step into the next turn
    return mask


def serpentine(height: int, width: int) -> np.ndarray:
    """Rows joined alternately at the right and the left end: one path of about height * width / 2 pixels."""
    mask = np.zeros((height, width), bool)
    mask[::2] = True
    for row in range(1, height, 2):
        mask[row, width - 1 if row % 4 == 1 else 0] = True
    return mask


def diagonals(size: int) -> np.ndarray:
    """Pixels touching only by corners: one component under 8-connectivity, size² / 2 under 4."""
    return np.add.outer(np.arange(size), np.arange(size)) % 2 == 0


def random_masks(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Random blobs of varied density: smoothed noise thresholded, isolated pixels, touching the borders."""
    noise = rng.random((count, height, width))
    masks = np.stack([ndimage.uniform_filter(n, size=int(rng.integers(1, 4))) for n in noise])
    return masks > rng.uniform(0.45, 0.75, (count, 1, 1))


def same_partition(tf_labels: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the TF labels of one slice split its foreground exactly as scipy's 8-connected labels do."""
    scipy_labels, count = ndimage.label(mask, structure=reference.CONNECTIVITY)
    if ((tf_labels > 0) != mask).any():
        return False
    pairs = set(zip(tf_labels[mask].tolist(), scipy_labels[mask].tolist()))
    return len(pairs) == count == len(np.unique(tf_labels[mask]))


SHAPES = [
    ("spiral", spiral(64)[None]),
    ("serpentine", serpentine(40, 33)[None]),
    ("diagonals", diagonals(17)[None]),
    ("one pixel", np.ones((1, 1, 1), bool)),
    ("one row", (np.arange(23) % 3 != 0)[None, None]),
    ("one column", (np.arange(19) % 4 != 1)[None, :, None]),
    ("full", np.ones((2, 7, 5), bool)),
    ("empty", np.zeros((2, 9, 4), bool)),
    ("random 64x48", random_masks(np.random.default_rng(0), 6, 64, 48)),
    ("random 31x97", random_masks(np.random.default_rng(1), 4, 31, 97)),
]


@pytest.mark.parametrize("masks", [masks for _, masks in SHAPES], ids=[name for name, _ in SHAPES])
def test_components_equal_scipys_8_connected_labels(masks):
    labels = postprocessing.component_labels(tf.constant(masks)).numpy()
    assert all(same_partition(labels[i], masks[i]) for i in range(len(masks)))


@pytest.mark.parametrize("min_pixels", [1, 2, 5, 30, 1000])
def test_removing_small_components_equals_numpy_on_a_mixed_batch(min_pixels):
    masks = np.concatenate([random_masks(np.random.default_rng(2), 5, 40, 40), spiral(40)[None], diagonals(40)[None]])
    removed = postprocessing.remove_small_components(tf.constant(masks), min_pixels).numpy()
    np.testing.assert_array_equal(removed, reference.remove_small_components(masks, min_pixels))


def test_postprocess_equals_numpy_inside_a_function_with_unknown_shapes():
    rng = np.random.default_rng(3)
    probabilities = np.stack([ndimage.gaussian_filter(rng.random((50, 70)), 2) for _ in range(4)]).astype(np.float32)
    probabilities = (probabilities - probabilities.min()) / (probabilities.max() - probabilities.min())
    for spec in (reference.PostProcessing(0.5, 0), reference.PostProcessing(0.55, 12), reference.PostProcessing(0.3, 200)):
        function = tf.function(
            lambda p, spec=spec: postprocessing.postprocess(p, spec), input_signature=[tf.TensorSpec([None, None, None], tf.float32)]
        )
        tf_mask = function(tf.constant(probabilities)).numpy()
        numpy_mask = reference.apply(probabilities, spec)
        assert tf_mask.dtype == np.uint8
        np.testing.assert_array_equal(tf_mask, numpy_mask)
    assert 0 < reference.apply(probabilities, reference.PostProcessing(0.55, 12)).sum() < (probabilities > 0.55).sum()  # it removed some


def test_without_a_minimum_size_no_loop_is_built():
    graph = (
        tf.function(lambda p: postprocessing.postprocess(p, reference.PostProcessing(0.4, 0)))
        .get_concrete_function(tf.TensorSpec([None, None, None], tf.float32))
        .graph
    )
    assert not any(op.type in ("While", "StatelessWhile") for op in graph.get_operations())
