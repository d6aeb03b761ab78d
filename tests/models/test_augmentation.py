import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from models import losses, networks
from models.augmentation import (
    RANGES,
    SliceAugmentation,
    add_background_structures,
    add_synthetic_lesions,
    apply_geometry,
    background_weight,
    bias_field,
)
from models.config import testing_config
from models.export import export_serving_model
from models.training_model import IMAGES, MASKS, training_model
from tests.helpers import square_example

DRAWS = 4096


@pytest.fixture(scope="module")
def parameters():
    """One large batch of drawn parameters (seed 0), as numpy arrays."""
    drawn = SliceAugmentation(seed=0).sample_parameters(DRAWS, 8, 8, 3)
    return {name: keras.ops.convert_to_numpy(value) for name, value in drawn.items()}


def _uniform_within(values: np.ndarray, low: float, high: float) -> None:
    """All inside [low, high], filling it: the extremes within 2 % of the ends, the mean mid-way."""
    width = high - low
    assert values.min() >= low and values.max() <= high
    assert values.min() < low + 0.02 * width and values.max() > high - 0.02 * width
    assert abs(values.mean() - (low + high) / 2) < 0.03 * width


def test_parameters_follow_the_configured_ranges(parameters):
    assert abs(parameters["flip"].mean() - RANGES.flip_probability) < 0.03
    _uniform_within(np.degrees(parameters["angle"]), -RANGES.max_rotation_degrees, RANGES.max_rotation_degrees)
    _uniform_within(parameters["scale"], *RANGES.scale)
    _uniform_within(parameters["shift"].ravel(), -RANGES.max_shift_fraction, RANGES.max_shift_fraction)
    _uniform_within(np.log(parameters["gamma"]).ravel(), -RANGES.max_log_gamma, RANGES.max_log_gamma)
    _uniform_within(parameters["gain"].ravel(), *RANGES.gain)
    assert abs(parameters["bias_coefficients"].std() - RANGES.bias_field_stddev) < 0.05 * RANGES.bias_field_stddev
    noise_stddev = parameters["noise"].reshape(DRAWS, -1).std(axis=1)  # 192 normal draws per slice
    assert noise_stddev.max() < RANGES.max_noise_stddev * 1.3 and noise_stddev.min() < 0.1 * RANGES.max_noise_stddev
    assert abs(noise_stddev.mean() - RANGES.max_noise_stddev / 2) < 0.05 * RANGES.max_noise_stddev


def test_the_coil_shading_brightens_or_darkens_the_periphery_and_leaves_the_centre():
    # exp(d (x^2 + y^2)) on a 5 x 5 grid over [-1, 1]: 1 at the centre, exp(d) mid-edge, exp(2 d) at the corners.
    coil = np.array([0.3, -0.3], np.float32).reshape(2, 1, 1, 1)
    field = keras.ops.convert_to_numpy(bias_field(np.zeros((2, 3, 1, 1, 1), np.float32), coil, 5, 5))[..., 0]
    for index, d in enumerate((0.3, -0.3)):
        np.testing.assert_allclose(field[index, 2, 2], 1.0, rtol=1e-6)
        np.testing.assert_allclose([field[index, 0, 2], field[index, 2, 4]], np.exp(d), rtol=1e-6)
        np.testing.assert_allclose([field[index, 0, 0], field[index, 4, 4]], np.exp(2 * d), rtol=1e-6)
        np.testing.assert_allclose(field[index, 1, 1], np.exp(d * 0.5), rtol=1e-6)  # x = y = -0.5


def test_coil_shading_is_drawn_only_when_asked_for_and_leaves_the_other_draws(parameters):
    assert not parameters["coil_shading"].any()  # off by default
    shaded = SliceAugmentation(seed=0, coil_shading=0.3).sample_parameters(DRAWS, 8, 8, 3)
    coil = keras.ops.convert_to_numpy(shaded["coil_shading"])
    assert abs(coil.std() - 0.3) < 0.015 and abs(coil.mean()) < 0.015
    for name in ("flip", "angle", "scale", "gamma", "gain", "bias_coefficients"):  # drawn before it: the same
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(shaded[name]), parameters[name])
    with pytest.raises(ValueError, match="coil_shading is a standard deviation \\(>= 0\\), got -1"):
        SliceAugmentation(coil_shading=-1)


def test_draws_are_independent_per_slice_and_per_sequence(parameters):
    # gamma and gain: one draw per MR sequence (3 channels), uncorrelated with each other and with the flip.
    gamma = np.log(parameters["gamma"][:, 0, 0, :])
    assert np.abs(np.corrcoef(gamma.T)[np.triu_indices(3, 1)]).max() < 0.06
    assert abs(np.corrcoef(parameters["angle"], parameters["scale"])[0, 1]) < 0.06


def _probes(count: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric L-shaped blob away from the border: images 255 x mask on every channel."""
    mask = np.zeros((size, size, 1), np.float32)
    mask[20:44, 22:30] = 1.0
    mask[36:44, 30:42] = 1.0
    return np.repeat(mask[None] * 255.0, 3, axis=-1).repeat(count, axis=0), mask[None].repeat(count, axis=0)


def test_applied_transforms_match_the_ranges_on_probes():
    images, masks = _probes(512)
    drawn = SliceAugmentation(seed=1).sample_parameters(512, 64, 64, 3)
    augmented_masks = keras.ops.convert_to_numpy(apply_geometry(images, masks, drawn)[1])[..., 0]
    # Zoom: the blob's area scales by scale**2 (nearest-neighbour resampling of the mask).
    implied_scale = np.sqrt(augmented_masks.sum(axis=(1, 2)) / masks[0].sum())
    np.testing.assert_allclose(implied_scale, keras.ops.convert_to_numpy(drawn["scale"]), atol=0.04)
    assert implied_scale.min() < RANGES.scale[0] + 0.03 and implied_scale.max() > RANGES.scale[1] - 0.03
    # Flip: the L's foot points right (center of mass left of the middle) unless flipped;
    # the content moves by -shift, and rotation and zoom move the center of mass by about 1 pixel.
    columns = np.arange(64)
    center_of_mass = (augmented_masks.sum(axis=1) * columns).sum(1) / augmented_masks.sum(axis=(1, 2))
    unshifted = center_of_mass + keras.ops.convert_to_numpy(drawn["shift"])[:, 0] * 64
    flipped = keras.ops.convert_to_numpy(drawn["flip"])
    assert ((unshifted > 31.5) == flipped).mean() > 0.98
    assert abs(flipped.mean() - RANGES.flip_probability) < 0.07
    # Intensity: a uniform 255 image has gamma-free gain x bias field x 255 (+ noise) at its center.
    bright = np.full((512, 64, 64, 3), 255.0, np.float32)
    augmented = keras.ops.convert_to_numpy(SliceAugmentation(seed=2)(bright, masks, training=True)[0])
    center_gain = augmented[:, 31:33, 31:33].mean(axis=(1, 2)) / 255
    assert center_gain.min() > RANGES.gain[0] * 0.95 and center_gain.max() < RANGES.gain[1] * 1.05
    assert center_gain.std() > 0.09  # uniform over [0.8, 1.2] has a standard deviation of 0.115


@pytest.mark.parametrize("seed", range(3))
def test_a_mask_that_is_a_function_of_the_image_stays_that_function(seed):
    images, masks = _probes(32)
    augmented_images, augmented_masks = (keras.ops.convert_to_numpy(x) for x in SliceAugmentation(seed=seed)(images, masks, training=True))
    assert len({m.tobytes() for m in augmented_masks}) == 32  # every slice moved differently
    assert set(np.unique(augmented_masks)) <= {0.0, 1.0}
    recomputed = augmented_images[..., 0] > 255.0 / 2  # the function that made the mask: image thresholded
    disagreement = (recomputed != (augmented_masks[..., 0] > 0)).sum(axis=(1, 2))
    boundary = 2 * (24 + 8 + 12 + 8) * 1.15  # pixels along the blob's outline at the largest zoom
    assert disagreement.max() <= boundary * 0.5  # only interpolated edge pixels may disagree
    unaligned = (recomputed != (masks[..., 0] > 0)).sum(axis=(1, 2))
    assert unaligned.mean() > 4 * disagreement.mean()  # the check can fail: unmoved masks do not match


def test_geometry_keeps_context_stacks_and_passes_through_outside_training():
    image, mask = square_example()
    stack = np.concatenate([image] * 3, axis=-1)[None]  # K = 1: 9 channels
    layer = SliceAugmentation(seed=3)
    same_images, same_masks = layer(stack, mask[None], training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(same_images), stack)
    augmented, _ = layer(stack, mask[None], training=True)
    augmented = keras.ops.convert_to_numpy(augmented)
    assert augmented.shape == stack.shape
    # Each MR sequence's gamma and gain are shared by the slices of the stack; noise is per pixel.
    np.testing.assert_allclose(augmented[..., 0:3], augmented[..., 3:6], atol=30)


def test_geometry_is_exact_for_the_identity():
    images, masks = _probes(2)
    zeros = np.zeros(2, "float32")
    identity = {"flip": zeros > 0, "angle": zeros, "scale": zeros + 1.0, "shift": np.zeros((2, 2), "float32")}
    moved_images, moved_masks = apply_geometry(images, masks, identity)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(moved_images), images, atol=1e-3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(moved_masks), masks)


def test_augmentation_is_random_but_reproducible_for_a_seed():
    images, masks = _probes(4)
    first = keras.ops.convert_to_numpy(SliceAugmentation(seed=5)(images, masks, training=True)[1])
    again = keras.ops.convert_to_numpy(SliceAugmentation(seed=5)(images, masks, training=True)[1])
    other = keras.ops.convert_to_numpy(SliceAugmentation(seed=6)(images, masks, training=True)[1])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _signatures(directory: str) -> dict:
    """{signature: (inputs, outputs)}, each a sorted list of (name, shape or None, dtype)."""

    def specs(named: dict) -> list:
        return sorted(
            (name, None if spec.shape.rank is None else tuple(spec.shape.as_list()), spec.dtype.name) for name, spec in named.items()
        )

    loaded = tf.saved_model.load(directory)
    return {name: (specs(fn.structured_input_signature[1]), specs(fn.structured_outputs)) for name, fn in loaded.signatures.items()}


def test_the_export_has_no_augmentation_and_the_same_signatures(tmp_path):
    config = testing_config()
    network = networks.build_model(config)
    trainer = training_model(network, augment=True, seed=0)
    trainer.compile(optimizer="adam", loss=losses.make_loss(config.loss, 10.0))
    images, masks = _probes(4, size=32)
    trainer.train_on_batch({IMAGES: images, MASKS: masks})
    augmentation_variables = [variable.path for variable in trainer.augmentation.variables]
    assert augmentation_variables and all(path.startswith("augmentation_seed/") for path in augmentation_variables)
    export_serving_model(network, config, str(tmp_path / "trained"))
    export_serving_model(networks.build_model(config), config, str(tmp_path / "plain"))
    assert _signatures(str(tmp_path / "trained")) == _signatures(str(tmp_path / "plain"))
    exported_variables = [variable.name for variable in tf.saved_model.load(str(tmp_path / "trained")).variables]
    assert len(exported_variables) == len(network.variables)
    assert not any("augmentation" in name for name in exported_variables)


def _head_probes(count: int, size: int = 64) -> np.ndarray:
    """A bright 'brain' square (150) with a dark 'ventricle' (10) inside, on a dark background (3)."""
    images = np.full((count, size, size, 3), 3.0, np.float32)
    images[:, 16:48, 16:48] = 150.0
    images[:, 29:35, 29:35] = 10.0
    return images


def test_the_background_is_outside_the_head_and_not_its_dark_inside():
    weight = keras.ops.convert_to_numpy(background_weight(_head_probes(1), RANGES.background_level))[0, ..., 0]
    np.testing.assert_array_equal(weight[:8, :8], 1.0)  # far from the head
    np.testing.assert_array_equal(weight[16:48, 16:48], 0.0)  # the head, its dark ventricle included


def test_background_structures_paint_only_the_background_of_the_drawn_slices():
    images = _head_probes(256)
    layer = SliceAugmentation(seed=2, background_structures=0.3)
    drawn = layer.sample_parameters(256, 64, 64, 3)
    painted = keras.ops.convert_to_numpy(add_background_structures(images, drawn))
    changed = np.abs(painted - images).max(axis=-1) > 1.0
    np.testing.assert_array_equal(changed[:, 16:48, 16:48], False)  # never inside the head
    chosen = keras.ops.convert_to_numpy(drawn["structures"])[:, 0, 0, 0]
    assert not changed[~chosen].any()
    painted_share = changed[chosen][:, :8, :].mean(axis=(1, 2))  # of a background band
    assert painted_share.min() > 0.0 and 0.1 < painted_share.mean() < 0.7
    assert abs(chosen.mean() - 0.3) < 0.1
    colours = painted[chosen][changed[chosen]]
    assert colours.max() > 0.9 * 255 * RANGES.structure_colour[1] and colours.min() < 1.2 * 255 * RANGES.structure_colour[0]


def test_background_structures_keep_the_masks_and_the_other_draws():
    images, masks = _head_probes(16), _probes(16)[1]
    plain_images, plain_masks = SliceAugmentation(seed=4)(images, masks, training=True)
    with_images, with_masks = SliceAugmentation(seed=4, background_structures=1.0)(images, masks, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(with_masks), keras.ops.convert_to_numpy(plain_masks))
    difference = np.abs(keras.ops.convert_to_numpy(with_images) - keras.ops.convert_to_numpy(plain_images)).max(axis=-1)
    assert (difference > 20).mean() > 0.1  # the structures are there


def test_background_structures_must_be_a_share():
    with pytest.raises(ValueError, match="background_structures must be in \\[0, 1\\], got 2"):
        SliceAugmentation(background_structures=2)


def test_synthetic_lesion_draws_follow_the_ranges():
    drawn = SliceAugmentation(seed=5, synthetic_lesions=0.5).sample_parameters(DRAWS, 8, 8, 3)
    drawn = {name: keras.ops.convert_to_numpy(value) for name, value in drawn.items() if name.startswith("lesion")}
    present = drawn["lesion_present"]
    chosen = present.sum(axis=1) > 0
    assert abs(chosen.mean() - 0.5) < 0.03
    counts = present[chosen].sum(axis=1)
    assert set(np.unique(counts)) == set(range(1, RANGES.max_lesions + 1))
    assert np.abs(np.bincount(counts.astype(int))[1:] / chosen.sum() - 1 / RANGES.max_lesions).max() < 0.03
    np.testing.assert_array_equal(present[chosen][:, 0], 1.0)  # slots fill in order: slot 0 whenever drawn
    _uniform_within(np.log(drawn["lesion_radius"]).ravel(), *np.log(RANGES.lesion_radius))
    _uniform_within(drawn["lesion_aspect"].ravel(), *RANGES.lesion_aspect)
    _uniform_within(drawn["lesion_center"].ravel(), -RANGES.lesion_center, RANGES.lesion_center)
    for sequence, span in enumerate(RANGES.lesion_contrast):
        _uniform_within(drawn["lesion_contrast"][:, 0, 0, sequence], *span)


def test_synthetic_lesions_are_painted_inside_the_head_of_the_drawn_slices_and_labelled_tumor():
    images, masks = _head_probes(256), np.zeros((256, 64, 64, 1), np.float32)
    drawn = SliceAugmentation(seed=6, synthetic_lesions=0.5).sample_parameters(256, 64, 64, 3)
    painted, labelled = (keras.ops.convert_to_numpy(value) for value in add_synthetic_lesions(images, masks, drawn))
    changed = np.abs(painted - images).max(axis=-1) > 1e-3
    tumor = labelled[..., 0] > 0
    outside_head = np.ones((64, 64), bool)
    outside_head[16:48, 16:48] = False
    assert not changed[:, outside_head].any() and not tumor[:, outside_head].any()
    assert not (tumor & ~changed).any()  # every new tumor pixel was painted
    chosen = keras.ops.convert_to_numpy(drawn["lesion_present"]).sum(axis=1) > 0
    assert not changed[~chosen].any() and not tumor[~chosen].any()
    assert (tumor[chosen].sum(axis=(1, 2)) > 0).mean() > 0.8  # a lesion centred outside the head is cut away
    components = [ndimage.label(slice_tumor)[1] for slice_tumor in tumor[chosen]]
    assert max(components) <= RANGES.max_lesions and np.mean(components) > 1.2
    flair = painted[..., 1]
    assert flair[tumor].mean() > 1.1 * images[..., 1][:, 16:48, 16:48].mean()  # FLAIR-bright, as a lesion is


def test_synthetic_lesions_only_add_tumor_to_the_masks():
    images, masks = _head_probes(16), _probes(16)[1]
    _, plain_masks = SliceAugmentation(seed=4)(images, masks, training=True)
    _, with_masks = SliceAugmentation(seed=4, synthetic_lesions=1.0)(images, masks, training=True)
    plain_masks, with_masks = keras.ops.convert_to_numpy(plain_masks), keras.ops.convert_to_numpy(with_masks)
    assert (with_masks >= plain_masks).all() and with_masks.sum() > plain_masks.sum()
    assert set(np.unique(with_masks)) <= {0.0, 1.0}


def test_synthetic_lesions_must_be_a_share():
    with pytest.raises(ValueError, match="synthetic_lesions must be in \\[0, 1\\], got -0.1"):
        SliceAugmentation(synthetic_lesions=-0.1)


def test_the_augmentation_picture_shows_five_rows_and_the_painted_lesions(tiny_dataset, tmp_path):
    output = tmp_path / "augmentation.png"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    arguments = ["--data-dir", tiny_dataset, "--output", str(output), "--columns", "3", "--size", "48"]
    script = os.path.join(root, "scripts", "augmentation_examples.py")
    subprocess.run([sys.executable, script, *arguments], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": root})
    rows = np.asarray(Image.open(output).convert("RGB"), np.int32).reshape(5, 48, 3 * 48, 3)
    assert not np.array_equal(rows[1], rows[3])  # the lesions row differs from the default augmentation's
    assert (rows[4] > 128).any()  # the mask row holds tumor
