"""The model that `fit` trains: the network, with augmentation inside the training step.

The batches are dicts {IMAGES: float32 [batch, size, size, 3 (2K + 1)], raw
0..255 intensities; MASKS: float32 [batch, size, size, 1] in 0/1} and no
separate target: the masks travel as an input so that the augmentation moves
them with the images on the accelerator, and the loss and metrics read the
(augmented) masks from the model's output. Only the wrapped network is
exported (models.export); the augmentation never reaches a serving signature.
"""

import keras

from models.augmentation import SliceAugmentation

IMAGES = "images"
MASKS = "masks"


class AugmentedTraining(keras.Model):
    """call({IMAGES, MASKS}, training) -> (network outputs, targets).

    In training the images and masks are augmented together first
    (`augmentation`, a SliceAugmentation; None: no augmentation); in
    evaluation they pass unchanged. The targets are the masks, repeated once
    per head when the network has several (UNet++ deep supervision).
    """

    def __init__(self, network: keras.Model, augmentation: SliceAugmentation | None = None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.augmentation = augmentation
        self.heads = len(network.outputs)
        self.output_names = network.output_names  # metric names as with the bare network ("val_dice", ...)
        # All state exists (the network is built, the augmentation's only state is its seed): weights can be
        # saved and restored before the first batch (BackupAndRestore needs that).
        self.built = True

    def call(self, inputs, training=False):
        images, masks = inputs[IMAGES], inputs[MASKS]
        if self.augmentation is not None:
            images, masks = self.augmentation(images, masks, training=training)
        outputs = self.network(images, training=training)
        return outputs, [masks] * self.heads if self.heads > 1 else masks

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        outputs, targets = y_pred
        return super().compute_loss(x, targets, outputs, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        outputs, targets = y_pred
        return super().compute_metrics(x, targets, outputs, sample_weight)


def training_model(
    network: keras.Model,
    augment: bool,
    seed: int,
    background_structures: float = 0.0,
    synthetic_lesions: float = 0.0,
    coil_shading: float = 0.0,
) -> AugmentedTraining:
    """`network` wrapped for `fit`, with on-device augmentation when `augment` (background_structures and
    synthetic_lesions: the shares of slices that get them; coil_shading: see SliceAugmentation)."""
    augmentation = (
        SliceAugmentation(
            seed=seed,
            background_structures=background_structures,
            synthetic_lesions=synthetic_lesions,
            coil_shading=coil_shading,
            name="augmentation",
        )
        if augment
        else None
    )
    return AugmentedTraining(network, augmentation, name="training")


def as_model_inputs(dataset):
    """A tf.data.Dataset of (images, masks) batches -> of {IMAGES, MASKS} dicts, what AugmentedTraining takes."""
    return dataset.map(lambda images, masks: {IMAGES: images, MASKS: masks})
