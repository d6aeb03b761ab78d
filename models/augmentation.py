"""Training-time augmentation on the accelerator, in Keras 3 ops (TensorFlow or JAX, CPU or GPU).

`SliceAugmentation` draws, for each slice of a batch independently: a
left-right flip, a rotation, a scaling and a shift (applied to image and mask
together: bilinear for the image, nearest for the mask), then a gamma and a
gain per MR sequence, a smooth multiplicative bias field and additive noise
(image only); with `coil_shading` > 0 the bias field also has a radial term,
the shading of a receive-coil array. With `background_structures` > 0 it
also paints, on that share of the slices, random structures of random MR
contrast into the dark background around the head, with no tumor label
(`add_background_structures`).
With `synthetic_lesions` > 0 it paints, on that share of the slices, one to
four random lesions inside the head, labelled tumor (`add_synthetic_lesions`).
It runs inside the training step (see models.training_model), so the
CPU-side tf.data pipeline only decodes, caches, samples and batches. The
ranges are defined once, in `RANGES`; the tests read them from there.
"""

import dataclasses
import math

import keras
from keras import ops


@dataclasses.dataclass(frozen=True)
class AugmentationRanges:
    """The distributions the augmentation draws from, per slice.

    flip_probability: chance of a left-right flip.
    max_rotation_degrees: rotation angle uniform in [-max, max] degrees.
    scale: zoom factor uniform in [low, high] (> 1 magnifies).
    max_shift_fraction: shift along each axis uniform in [-max, max] x the slice side.
    max_log_gamma: gamma = exp(u), u uniform in [-max, max], per MR sequence.
    gain: intensity gain uniform in [low, high], per MR sequence.
    bias_field_stddev: the bias field, one per slice, is exp(a x + b y + c x y + d (x^2 + y^2))
      over x, y in [-1, 1], with a, b, c normal(0, stddev); d is the coil shading
      (`SliceAugmentation`'s coil_shading).
    max_noise_stddev: Gaussian noise on brain pixels (> 0), standard deviation
      uniform in [0, max] on the 0..255 scale, per slice.
    background_level: background structures go only where the slice, smoothed
      over 8x8 blocks, is darker than this on the 0..255 scale (brightest channel).
    structure_colour: each structure layer's intensity per MR sequence,
      uniform in [low, high] x 255 (lesion-like contrasts included).
    max_lesions: synthetic lesions per drawn slice, uniform in 1..max.
    lesion_radius: each lesion's mean radius, log-uniform in [low, high] x the
      slice's half side (1.6-11.5 pixels at 128 x 128).
    lesion_aspect: minor / major axis, uniform in [low, high].
    lesion_center: each lesion's center, uniform in [-max, max] x the half side
      on both axes (a lesion centred outside the head is cut away).
    lesion_contrast: a lesion's intensity per MR sequence (pre-contrast, FLAIR,
      post-contrast), uniform in [low, high] x the slice's mean intensity inside
      the head: T1-dark or not, FLAIR-bright, enhancing or not.
    """

    flip_probability: float = 0.5
    max_rotation_degrees: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    max_shift_fraction: float = 0.06
    max_log_gamma: float = 0.25
    gain: tuple[float, float] = (0.8, 1.2)
    bias_field_stddev: float = 0.1
    max_noise_stddev: float = 4.0
    background_level: float = 20.0
    structure_colour: tuple[float, float] = (0.15, 1.0)
    max_lesions: int = 4
    lesion_radius: tuple[float, float] = (0.025, 0.18)
    lesion_aspect: tuple[float, float] = (0.4, 1.0)
    lesion_center: float = 0.6
    lesion_contrast: tuple[tuple[float, float], ...] = ((0.5, 1.1), (1.4, 2.4), (0.6, 1.8))


RANGES = AugmentationRanges()
SEQUENCES = 3  # MR sequences per slice (pre-contrast, FLAIR, post-contrast)
# Background structure layers: {name: side of the random grid that is smoothly upsampled}; a
# coarse one (blobs of about a sixth of the slice: fat, muscle, sinuses) and a fine one (lesion-sized).
STRUCTURE_LAYERS = {"coarse": 6, "fine": 16}


@keras.saving.register_keras_serializable(package="unet4mri")
class SliceAugmentation(keras.layers.Layer):
    """Random geometric and intensity transforms of (images, masks), only when training.

    background_structures: share of slices that get background structures
    (`add_background_structures`); synthetic_lesions: share of slices that get
    synthetic lesions (`add_synthetic_lesions`). coil_shading: standard
    deviation of the bias field's radial coefficient d, the shading of a
    receive-coil array: the periphery brighter than the centre (d > 0) or
    darker (d < 0), the centre unchanged (`bias_field`). 0 draws nothing for
    an option, so the other transforms are those of a layer without it.

    Inputs: images float32 [batch, height, width, 3 (2K + 1)], NHWC, raw
    0..255 intensities (with K context slices each MR sequence's gamma and
    gain are shared by the stack); masks float32 [batch, height,
    width, 1] in 0/1. Returns both transformed (masks stay 0/1). With
    `training` False they pass through unchanged. Always computes in float32
    (under a mixed-precision policy too). seed: of the layer's SeedGenerator.
    """

    def __init__(
        self,
        seed: int | None = None,
        background_structures: float = 0.0,
        synthetic_lesions: float = 0.0,
        coil_shading: float = 0.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        for name, share in (("background_structures", background_structures), ("synthetic_lesions", synthetic_lesions)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {share}")
        if coil_shading < 0:
            raise ValueError(f"coil_shading is a standard deviation (>= 0), got {coil_shading}")
        self.seed = seed
        self.background_structures = background_structures
        self.synthetic_lesions = synthetic_lesions
        self.coil_shading = coil_shading
        self.seed_generator = keras.random.SeedGenerator(seed, name="augmentation_seed")

    def sample_parameters(self, batch_size, height, width, channels) -> dict:
        """One draw per slice of every parameter in RANGES (shapes broadcast to [batch, height, width, channels])."""
        ranges, seed = RANGES, self.seed_generator
        stacks = channels // SEQUENCES

        def per_sequence(values):  # [batch, 1, 1, 3] -> [batch, 1, 1, 3 stacks]: one draw per MR sequence
            return ops.tile(values, [1, 1, 1, stacks])

        max_angle = ranges.max_rotation_degrees * math.pi / 180.0
        log_gamma = keras.random.uniform([batch_size, 1, 1, SEQUENCES], -ranges.max_log_gamma, ranges.max_log_gamma, seed=seed)
        drawn = {
            "flip": keras.random.uniform([batch_size], seed=seed) < ranges.flip_probability,
            "angle": keras.random.uniform([batch_size], -max_angle, max_angle, seed=seed),
            "scale": keras.random.uniform([batch_size], *ranges.scale, seed=seed),
            "shift": keras.random.uniform([batch_size, 2], -ranges.max_shift_fraction, ranges.max_shift_fraction, seed=seed),
            "gamma": per_sequence(ops.exp(log_gamma)),
            "gain": per_sequence(keras.random.uniform([batch_size, 1, 1, SEQUENCES], *ranges.gain, seed=seed)),
            "bias_coefficients": keras.random.normal([batch_size, 3, 1, 1, 1], stddev=ranges.bias_field_stddev, seed=seed),
            "coil_shading": (
                keras.random.normal([batch_size, 1, 1, 1], stddev=self.coil_shading, seed=seed)
                if self.coil_shading > 0
                else ops.zeros([batch_size, 1, 1, 1])
            ),
            "noise": keras.random.normal([batch_size, height, width, channels], seed=seed)
            * keras.random.uniform([batch_size, 1, 1, 1], 0.0, ranges.max_noise_stddev, seed=seed),
        }
        if self.background_structures > 0:
            low, high = ranges.structure_colour
            drawn["structures"] = keras.random.uniform([batch_size, 1, 1, 1], seed=seed) < self.background_structures
            for layer, grid in STRUCTURE_LAYERS.items():
                drawn[f"{layer}_field"] = keras.random.uniform([batch_size, grid, grid, 1], seed=seed)
                drawn[f"{layer}_level"] = keras.random.uniform([batch_size, 1, 1, 1], 0.55, 0.8, seed=seed)
                colour = keras.random.uniform([batch_size, 1, 1, SEQUENCES], low * 255.0, high * 255.0, seed=seed)
                drawn[f"{layer}_colour"] = per_sequence(colour)
            drawn["structure_texture"] = keras.random.uniform([batch_size, 32, 32, 1], seed=seed)
        if self.synthetic_lesions > 0:
            drawn.update(self.sample_lesions(batch_size, per_sequence))
        return drawn

    def sample_lesions(self, batch_size, per_sequence) -> dict:
        """The synthetic lesions' parameters: [batch, lesion] shapes, one slot per possible lesion."""
        ranges, seed, slots = RANGES, self.seed_generator, RANGES.max_lesions
        count = 1 + ops.floor(keras.random.uniform([batch_size, 1], 0.0, float(slots), seed=seed))
        drawn = ops.cast(keras.random.uniform([batch_size, 1], seed=seed) < self.synthetic_lesions, "float32")
        low, high = (math.log(value) for value in ranges.lesion_radius)
        contrast = [keras.random.uniform([batch_size, 1, 1, 1], *span, seed=seed) for span in ranges.lesion_contrast]
        return {
            "lesion_present": ops.cast(ops.arange(slots, dtype="float32")[None] < count, "float32") * drawn,
            "lesion_center": keras.random.uniform([batch_size, slots, 2], -ranges.lesion_center, ranges.lesion_center, seed=seed),
            "lesion_radius": ops.exp(keras.random.uniform([batch_size, slots], low, high, seed=seed)),
            "lesion_aspect": keras.random.uniform([batch_size, slots], *ranges.lesion_aspect, seed=seed),
            "lesion_angle": keras.random.uniform([batch_size, slots], 0.0, math.pi, seed=seed),
            "lesion_outline": keras.random.normal([batch_size, 8, 8, 1], stddev=0.15, seed=seed),
            "lesion_texture": keras.random.uniform([batch_size, 32, 32, 1], seed=seed),
            "lesion_contrast": per_sequence(ops.concatenate(contrast, axis=-1)),
        }

    def call(self, images, masks, training=None):
        if not training:
            return images, masks
        batch_size, height, width, channels = ops.shape(images)
        if channels % SEQUENCES:
            raise ValueError(f"images must have a multiple of {SEQUENCES} channels, got {channels}")
        parameters = self.sample_parameters(batch_size, height, width, channels)
        images, masks = apply_geometry(images, masks, parameters)
        if "lesion_present" in parameters:
            images, masks = add_synthetic_lesions(images, masks, parameters)
        if "structures" in parameters:
            images = add_background_structures(images, parameters)
        return apply_intensity(images, parameters), masks

    def compute_output_shape(self, images_shape, masks_shape):
        return images_shape, masks_shape

    def get_config(self):
        return {
            **super().get_config(),
            "seed": self.seed,
            "background_structures": self.background_structures,
            "synthetic_lesions": self.synthetic_lesions,
            "coil_shading": self.coil_shading,
        }


def affine_matrices(angle, scale, shift, height, width):
    """float32 [batch, 8] projective transforms (the convention of `keras.ops.image.affine_transform`):
    output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2), a rotation by
    `angle` (radians) and a zoom by `scale` about the slice center, then a shift by
    `shift` [batch, 2] (x, y) x the slice side."""
    cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
    center_x, center_y = (ops.cast(width, "float32") - 1.0) / 2.0, (ops.cast(height, "float32") - 1.0) / 2.0
    shift_x, shift_y = shift[:, 0] * ops.cast(height, "float32"), shift[:, 1] * ops.cast(height, "float32")
    zeros = ops.zeros_like(cos)
    return ops.stack(
        [
            cos,
            -sin,
            center_x - cos * center_x + sin * center_y + shift_x,
            sin,
            cos,
            center_y - sin * center_x - cos * center_y + shift_y,
            zeros,
            zeros,
        ],
        axis=1,
    )


def apply_geometry(images, masks, parameters: dict):
    """Flip, then rotate, scale and shift images (bilinear) and masks (nearest) alike; zeros fill the outside."""
    flip = parameters["flip"][:, None, None, None]
    images = ops.where(flip, ops.flip(images, axis=2), images)
    masks = ops.where(flip, ops.flip(masks, axis=2), masks)
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    transforms = affine_matrices(parameters["angle"], parameters["scale"], parameters["shift"], height, width)
    images = ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant", data_format="channels_last")
    masks = ops.image.affine_transform(masks, transforms, interpolation="nearest", fill_mode="constant", data_format="channels_last")
    return images, masks


def bias_field(coefficients, coil_shading, height, width):
    """exp(a x + b y + c x y + d (x^2 + y^2)) over x, y in [-1, 1]: coefficients (a, b, c) [batch, 3, 1, 1, 1]
    and the coil shading d [batch, 1, 1, 1] -> [batch, height, width, 1]."""
    yy, xx = ops.meshgrid(ops.linspace(-1.0, 1.0, height), ops.linspace(-1.0, 1.0, width), indexing="ij")
    xx, yy = xx[None, :, :, None], yy[None, :, :, None]
    linear = coefficients[:, 0] * xx + coefficients[:, 1] * yy + coefficients[:, 2] * xx * yy
    return ops.exp(linear + coil_shading * (xx * xx + yy * yy))


def apply_intensity(images, parameters: dict):
    """Gamma and gain per MR sequence, the slice's bias field, then noise on pixels > 0 (the background stays 0)."""
    bias = bias_field(parameters["bias_coefficients"], parameters["coil_shading"], ops.shape(images)[1], ops.shape(images)[2])
    normalized = ops.maximum(images, 0.0) / 255.0
    images = ops.power(normalized, parameters["gamma"]) * parameters["gain"] * bias * 255.0
    return ops.where(images > 0, ops.maximum(images + parameters["noise"], 0.0), images)


def background_weight(images, level: float):
    """float32 [batch, height, width, 1] in 0..1: 1 where the slice is background (outside the head).

    The brightest channel is averaged over 8x8 blocks (so CSF and dark lesions inside the brain,
    which brain tissue surrounds, do not count) and upsampled: 1 below level / 2, 0 above `level`.
    """
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    brightest = ops.max(images, axis=-1, keepdims=True)
    blocks = ops.average_pool(brightest, pool_size=8, strides=8, padding="same", data_format="channels_last")
    smoothed = ops.image.resize(blocks, (height, width), interpolation="bilinear", data_format="channels_last")
    return ops.clip((level - smoothed) / (level / 2.0), 0.0, 1.0)


def painted_texture(grid, size):
    """A multiplicative +-15 % texture for painted intensities: the uniform random `grid`
    [batch, g, g, 1] upsampled bilinearly to `size` (height, width) and mapped to 0.85..1.15."""
    return 0.85 + 0.3 * ops.image.resize(grid, size, interpolation="bilinear", data_format="channels_last")


def add_background_structures(images, parameters: dict):
    """Paint random structures into the background of the slices drawn in `parameters["structures"]`.

    Real head scans are not skull-stripped: scalp fat, marrow, muscle, the orbits and the sinus
    mucosa surround the brain, and several are bright on FLAIR like a lesion. A network trained on
    skull-stripped slices has never seen them and paints tumor there. Each drawn slice gets two
    layers (STRUCTURE_LAYERS) of smooth random blobs, each covering part of the background, with a
    random intensity per MR sequence (RANGES.structure_colour) and a +-15 % texture, blended in by
    `background_weight` (fully where it is 1, fading out towards the head, never on it); the masks
    do not change (a structure outside the brain is not tumor).
    The idea is domain randomization with random contrasts (Billot et al., SynthSeg, Medical
    Image Analysis 2023). images: float32 [batch, height, width, 3 (2K + 1)], 0..255.
    """
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    size = (height, width)
    where = background_weight(images, RANGES.background_level) * ops.cast(parameters["structures"], "float32")
    texture = painted_texture(parameters["structure_texture"], size)
    for layer in STRUCTURE_LAYERS:
        field = ops.image.resize(parameters[f"{layer}_field"], size, interpolation="bicubic", data_format="channels_last")
        blobs = ops.clip((field - parameters[f"{layer}_level"]) / 0.04, 0.0, 1.0) * where
        images = images + blobs * (parameters[f"{layer}_colour"] * texture - images)
    return images


def lesion_weight(parameters: dict, height, width):
    """float32 [batch, height, width, 1] in 0..1: the union of the drawn lesions (soft edge, irregular outline).

    Each lesion is an ellipse (RANGES.lesion_*) whose normalized radius is perturbed by a smooth
    random field, so outlines are lobulated rather than elliptic; absent slots weigh 0.
    """
    yy, xx = ops.meshgrid(ops.linspace(-1.0, 1.0, height), ops.linspace(-1.0, 1.0, width), indexing="ij")
    xx, yy = xx[None, None], yy[None, None]  # [1, 1, height, width]
    center, radius = parameters["lesion_center"], parameters["lesion_radius"][:, :, None, None]
    dx, dy = xx - center[:, :, 0, None, None], yy - center[:, :, 1, None, None]
    angle = parameters["lesion_angle"][:, :, None, None]
    along, across = dx * ops.cos(angle) + dy * ops.sin(angle), dy * ops.cos(angle) - dx * ops.sin(angle)
    distance = ops.sqrt(along**2 + (across / parameters["lesion_aspect"][:, :, None, None]) ** 2) / radius
    outline = ops.image.resize(parameters["lesion_outline"], (height, width), interpolation="bicubic", data_format="channels_last")
    distance = distance + ops.transpose(outline, (0, 3, 1, 2))
    weights = ops.clip((1.0 - distance) / 0.2 + 0.5, 0.0, 1.0) * parameters["lesion_present"][:, :, None, None]
    return ops.max(weights, axis=1)[..., None]


def add_synthetic_lesions(images, masks, parameters: dict):
    """Paint the lesions drawn in `parameters` inside the head, and label them tumor.

    Skull-stripped training data holds one lesion model (the scanner's, the cohort's); scans from
    elsewhere bring lesions of other sizes, numbers, shapes, places and contrasts, which the network
    misses. Each drawn slice gets one to RANGES.max_lesions random lesions (`lesion_weight`), kept
    where the slice is head (`background_weight` 0, the pixel not black), coloured per MR sequence
    relative to the slice's mean intensity inside the head (RANGES.lesion_contrast) with a +-15 %
    texture; the mask becomes tumor where a lesion's weight exceeds 0.5. Domain randomization of
    the lesion, as `add_background_structures` is of its surroundings.
    images: float32 [batch, height, width, 3 (2K + 1)], 0..255; masks float32 [batch, height, width, 1].
    """
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    head = ops.cast(background_weight(images, RANGES.background_level) == 0.0, "float32")
    head = head * ops.cast(ops.max(images, axis=-1, keepdims=True) > 5.0, "float32")
    weight = lesion_weight(parameters, height, width) * head
    mean_inside = ops.sum(images * head, axis=(1, 2), keepdims=True) / ops.maximum(ops.sum(head, axis=(1, 2), keepdims=True), 1.0)
    texture = painted_texture(parameters["lesion_texture"], (height, width))
    colour = ops.minimum(parameters["lesion_contrast"] * mean_inside * texture, 255.0)
    images = images + weight * (colour - images)
    return images, ops.maximum(masks, ops.cast(weight > 0.5, masks.dtype))
