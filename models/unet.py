"""UNet (Ronneberger et al. 2015) for binary segmentation, in Keras 3.

Input: float32 [batch, height, width, 3 (2K + 1)], NHWC (the slice's three MR
sequences, then K context slices below and K above), raw intensities (0..255 for
kaggle_3m slices); the first layer standardizes each slice and channel.
Output: tumor logits float32 [batch, height, width, 1]; the sigmoid lives in
the loss and in the exported signatures.
"""

import keras
from keras import layers, ops

from models.config import TrainingConfig


@keras.saving.register_keras_serializable(package="unet4mri")
class SliceStandardization(layers.Layer):
    """Per-slice, per-channel z-score over the brain (pixels brighter than `background`).

    Scanner gain and offset differ between sites; standardizing each slice
    makes the network see the same contrasts whatever the scanner's scale.
    Background pixels are set to 0. A slice with no brain pixels stays 0.
    """

    def __init__(self, background: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.background = background

    def call(self, images):
        images = ops.cast(images, "float32")
        foreground = ops.cast(ops.max(images, axis=-1, keepdims=True) > self.background, "float32")
        count = ops.maximum(ops.sum(foreground, axis=(1, 2), keepdims=True), 1.0)
        mean = ops.sum(images * foreground, axis=(1, 2), keepdims=True) / count
        variance = ops.sum(ops.square(images - mean) * foreground, axis=(1, 2), keepdims=True) / count
        return (images - mean) / ops.sqrt(variance + 1.0) * foreground

    def get_config(self):
        return {**super().get_config(), "background": self.background}


def conv_block(inputs, filters: int, dropout_rate: float, name: str):
    """Two 3x3 convolutions, each followed by batch normalization and ReLU; dropout between."""
    x = inputs
    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv{index}")(x)
        # momentum 0.9: moving statistics settle within the few hundred steps of a CPU run
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{index}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{index}")(x)
        if index == 1 and dropout_rate > 0:
            x = layers.SpatialDropout2D(dropout_rate, name=f"{name}_dropout")(x)
    return x


def up_block(inputs, filters: int, name: str):
    """2x up-sampling by a transposed convolution."""
    return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(inputs)


def logits_head(inputs, name: str):
    """1x1 convolution to one tumor logit per pixel, float32 even under mixed precision."""
    return layers.Conv2D(1, 1, dtype="float32", name=name)(inputs)


def level_filters(config: TrainingConfig, level: int) -> int:
    return config.n_filters * 2**level


def encoder(config: TrainingConfig, inputs):
    """The contracting path: features of levels 0..depth (list), from the standardized inputs."""
    x = SliceStandardization(name="standardize")(inputs)
    features = []
    for level in range(config.depth + 1):
        if level > 0:
            x = layers.MaxPooling2D(2, name=f"x{level}_0_pool")(x)
        x = conv_block(x, level_filters(config, level), config.dropout_rate, name=f"x{level}_0")
        features.append(x)
    return features


def build_unet(config: TrainingConfig) -> keras.Model:
    """UNet with `config.depth` levels and `config.n_filters` filters at the first."""
    inputs = keras.Input((None, None, config.input_channels), name="images")
    features = encoder(config, inputs)
    x = features[-1]
    for level in reversed(range(config.depth)):
        name = f"x{level}_{config.depth - level}"
        x = up_block(x, level_filters(config, level), name)
        x = layers.Concatenate(name=f"{name}_concat")([features[level], x])
        x = conv_block(x, level_filters(config, level), config.dropout_rate, name=name)
    return keras.Model(inputs, logits_head(x, "logits"), name="unet")
