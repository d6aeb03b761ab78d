import keras
import numpy as np
import pytest
import tensorflow as tf

from models import patches

SIZE, PATCH = 256, 32


def _slice_with_a_small_tumor():
    image = tf.random.uniform([SIZE, SIZE, 3], 0, 255, seed=1)
    mask = np.zeros([SIZE, SIZE, 1], np.float32)
    mask[150:158, 60:68] = 1.0  # 64 pixels, 0.1 % of the slice
    return image, tf.constant(mask)


def _tumor_share(fraction: float, samples: int = 1500) -> float:
    image, mask = _slice_with_a_small_tumor()
    sample = tf.function(lambda seed: patches.sample_patch(image, mask, seed, PATCH, fraction))
    hits = 0
    for index in range(samples):
        crop_image, crop_mask = sample(tf.constant([index, 7]))
        assert crop_image.shape == (PATCH, PATCH, 3) and crop_mask.shape == (PATCH, PATCH, 1)
        hits += int(tf.reduce_any(crop_mask > 0))
    return hits / samples


def test_patches_have_the_size_and_the_configured_share_of_tumor():
    # A uniform crop overlaps the 8x8 tumor with probability ((32 + 8 - 1) / (256 - 32 + 1))^2 = 0.030.
    uniform = (PATCH + 8 - 1) ** 2 / (SIZE - PATCH + 1) ** 2
    assert _tumor_share(0.0) == pytest.approx(uniform, abs=0.015)
    assert _tumor_share(1.0) == 1.0  # jitter is at most a quarter patch: the center stays within reach of the tumor
    assert _tumor_share(0.5) == pytest.approx(0.5 + 0.5 * uniform, abs=0.045)


def test_a_slice_without_tumor_gets_uniform_crops_inside_it():
    image = tf.reshape(tf.range(SIZE * SIZE * 3, dtype=tf.float32), [SIZE, SIZE, 3])
    mask = tf.zeros([SIZE, SIZE, 1])
    corners = set()
    for index in range(50):
        crop, _ = patches.sample_patch(image, mask, tf.constant([index, 0]), PATCH, 1.0)
        first = int(crop[0, 0, 0]) // 3
        corners.add((first // SIZE, first % SIZE))
        assert first // SIZE <= SIZE - PATCH and first % SIZE <= SIZE - PATCH
    assert len(corners) > 40


def _local_network():
    """Fully convolutional, receptive field 5x5: a tile sees the same context as the whole slice 2 pixels from its borders."""
    inputs = keras.Input([None, None, 3])
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(hidden))


@pytest.mark.parametrize("height, width", [(96, 96), (100, 70)])
def test_sliding_window_equals_whole_slice_inference_away_from_tile_borders(height, width):
    network = _local_network()
    images = tf.random.uniform([2, height, width, 3], seed=3)
    whole = tf.sigmoid(network(images))
    tiled = patches.sliding_window_probabilities(network, images, window=32, overlap=0.5)
    assert tiled.shape == whole.shape

    # Where every tile covering a pixel has it at least 2 pixels inside (or at the slice's
    # own border, which the whole-slice pass pads the same way), all tiles see the same
    # context as the whole slice, and their weighted average is the whole-slice value.
    def same_context(length):
        starts = patches.tile_starts(length, 32, 0.5).numpy()
        ok = np.ones(length, bool)
        for position in range(length):
            for start in starts[(starts <= position) & (position < starts + 32)]:
                inside = (position - start >= 2 or start == 0) and (start + 31 - position >= 2 or start + 32 == length)
                ok[position] &= inside
        return ok

    region = same_context(height)[:, None] & same_context(width)[None, :]
    assert region.mean() > 0.5
    np.testing.assert_allclose(tiled.numpy()[:, region], whole.numpy()[:, region], atol=1e-5)
    assert np.abs(tiled.numpy() - whole.numpy()).max() > 1e-4  # elsewhere the tiles' zero padding shows: the test can fail


def test_a_slice_smaller_than_the_window_is_one_tile():
    network = _local_network()
    images = tf.random.uniform([1, 24, 40, 3], seed=4)
    np.testing.assert_allclose(
        patches.sliding_window_probabilities(network, images, window=64).numpy(), tf.sigmoid(network(images)).numpy(), atol=1e-6
    )


def test_gaussian_weights_peak_at_the_center():
    weights = patches.gaussian_weights(16)[..., 0].numpy()
    assert weights.shape == (16, 16) and weights.max() == pytest.approx(1.0) and weights.min() >= 1e-3
    assert weights[7, 7] == weights.max() and weights[0, 0] < weights[4, 4] < weights[7, 7]
