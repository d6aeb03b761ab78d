"""Training configuration: one frozen, validated object."""

import dataclasses
import json

from core.config_fields import option

MODELS = ("unet", "unetpp")
LOSSES = (
    "bce",
    "weighted_bce",
    "dice",
    "jaccard",
    "tversky",
    "focal_tversky",
    "focal",
    "bce_dice",
    "weighted_bce_dice",
)
N_FILTERS = (8, 16, 32, 64)
# The validation metric (a `core.metrics` key) that picks the best epoch, stops
# early and lowers the learning rate. dice_pooled counts every slice, so
# tumor painted on healthy slices lowers it; dice_per_tumor_slice_mean ignores
# healthy slices.
SELECTION_METRICS = ("dice_pooled", "dice_per_tumor_slice_mean")
WARM_START_SERVED = "served"  # `warm_start` value: the model being served (the pipeline supplies it)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines one training run.

    image_size: square side in pixels the slices are resized to for the network
      (native kaggle_3m slices are 256; 128 is the CPU default).
    depth: number of down-sampling levels; the image size must be divisible by 2**depth.
    n_filters: filters of the first level, doubling per level.
    loss: one of LOSSES; the `weighted_*` losses use the positive-pixel weight
      computed by the pipeline (negative / positive pixels of the train split),
      raised to `positive_weight_exponent`.
    positive_weight_exponent: the weighted losses weight tumor pixels by
      (negative / positive pixels) ** exponent: 1 balances the classes of the
      train split, 0.5 (the default) tempers the weight (119.5 -> 10.9 on the
      embedded data, 630 -> 25 on small lesions), 0 is the unweighted loss.
      Weighted BCE is minimized at sigmoid = w·p / (w·p + 1 - p) for a true
      probability p, so a large w paints a tumor wherever p exceeds about
      1 / (1 + w); tumor slices are moreover oversampled to half of each
      batch, which the split's pixel ratio does not count. Measured on both
      families: docs/results.md, "The positive-pixel weight".
    tumor_slice_fraction: share of tumor slices in each training batch (oversampling).
    background_structures: share of training slices that get random structures
      of random MR contrast painted into their dark background, with no tumor
      label (models.augmentation.add_background_structures): skull-stripped
      training data never shows the scalp, orbits and sinuses of an unstripped
      scan. Needs `augment`.
    synthetic_lesions: share of training slices that get one to four random
      lesions of random size, shape, place and MR contrast painted inside the
      head, labelled tumor (models.augmentation.add_synthetic_lesions): one
      cohort's lesions are not another's. Needs `augment`.
    coil_shading: standard deviation of the radial term d of the augmentation's
      bias field, exp(d (x^2 + y^2)) over the slice (models.augmentation.bias_field):
      a receive-coil array makes the periphery of an unnormalized scan brighter
      than its centre, or darker. Measured in docs/results.md ("Coil shading").
      Needs `augment`.
    hard_negative_fraction: share of the tumor-free part of each batch drawn from
      the hard negatives (models.hard_negatives: tumor-free train slices at the
      ends of their volume or predicted with tumor at the end of the previous
      epoch) instead of from all tumor-free slices; 0: off. Needs oversampling
      (tumor_slice_fraction > 0).
    min_steps_per_epoch: an epoch is one pass over the train split's slices
      (slices // batch_size steps) but at least this many steps. An epoch is
      the interval between validations, which early stopping and the
      learning-rate schedule count in; on a small dataset (16 cases: 6 steps
      of 32) a patience of 8 epochs is 48 steps, and the run stopped before
      the network had learned to leave healthy slices empty. 15 steps of 32
      slices is about one pass over the embedded data's train split (500
      slices), whose runs it leaves as they were.
    prune_level: UNet++ only, the supervision head (1..depth) the exported model uses.
    patch_size: train on patch_size x patch_size crops of the slices (at
      `image_size`; use image_size=256 for native resolution) instead of whole
      slices; validation and inference run on whole slices (the network is
      fully convolutional). None: whole slices.
    tumor_patch_fraction: share of patches centered on a tumor pixel (with
      jitter); the rest are placed uniformly. Tumor slices are first
      oversampled to `tumor_slice_fraction` as without patches.
    inference_window: the exported model runs slices larger than this (at
      `image_size`) by overlapping tiles with Gaussian blending; None: whole slices.
    context_slices: K > 0 adds the K slices below and above each slice (same
      case) as input channels: the network sees 3 (2K + 1) channels.
    mixed_precision: None (float32), "float16" (Volta to Ampere GPUs) or
      "bfloat16" (Ampere and later, TPUs); losses and logits stay float32.
    jit_compile: compile training steps with XLA.
    selection_metric: the validation metric (a key of `core.metrics`, one of
      SELECTION_METRICS) whose best epoch is exported, which early stopping
      and the learning-rate schedule watch; the default, `dice_pooled`, counts
      false positives on tumor-free slices, `dice_per_tumor_slice_mean` does not.
    selection_smoothing: S > 0 makes those three watch an exponential moving
      average of the selection metric, S * previous + (1 - S) * this epoch's
      (as nnU-Net chooses its best checkpoint), so that one epoch's lucky figure
      on a few eval patients neither becomes the best epoch nor ends the run
      (default 0.7, docs/results.md "Selection on a moving average").
    postprocessing: after training, choose the mask's probability threshold and
      minimum 8-connected component size on the eval patients
      (core.postprocessing.choose); False: the default (0.5, no removal).
    """

    model: str = option("unet", "network", choices=MODELS)
    depth: int = option(4, "down-sampling levels; image size and patch size must be multiples of 2**depth")
    n_filters: int = option(16, "filters of the first level, doubling per level", choices=N_FILTERS)
    dropout_rate: float = option(0.05, "spatial dropout rate", aliases=("--dropout",))
    deep_supervision: bool = option(False, "UNet++: train every head")
    prune_level: int | None = option(None, "UNet++ with deep supervision: export the sub-network of this head (1..depth)")
    loss: str = option("weighted_bce_dice", "loss", choices=LOSSES)
    positive_weight_exponent: float = option(
        0.5, "weighted losses: tumor pixels weigh (background / tumor pixels) ** this (1: balanced, 0: unweighted)"
    )
    image_size: int = option(128, "training resolution in pixels")
    batch_size: int = option(32, "slices per training step (the global batch with several GPUs)")
    epochs: int = option(60, "maximum epochs; early stopping on --selection-metric")
    min_steps_per_epoch: int = option(
        15, "an epoch (validation, early stopping, learning-rate schedule) is at least this many training steps"
    )
    learning_rate: float = option(2e-3, "Adam learning rate")
    tumor_slice_fraction: float = option(0.5, "share of tumor slices per batch")
    hard_negative_fraction: float = option(
        0.0, "share of the tumor-free slices per batch drawn from the hard negatives (volume ends, last epoch's false positives); 0: off"
    )
    augment: bool = option(True, "train without augmentation (flips, rotations, scaling, intensity)")
    background_structures: float = option(
        0.0, "share of training slices whose dark background gets random structures of random contrast, labelled healthy; 0: off"
    )
    synthetic_lesions: float = option(
        0.0, "share of training slices that get random lesions of random size, shape and contrast, labelled tumor; 0: off"
    )
    coil_shading: float = option(
        0.0,
        "standard deviation of a radial bias field in the augmentation (receive-coil shading: periphery x exp(d), "
        "corners x exp(2 d)); 0: off",
    )
    early_stopping_patience: int = option(8, "early-stopping patience in epochs", aliases=("--patience",))
    selection_metric: str = option(
        "dice_pooled",
        "validation metric of the best epoch, early stopping and the learning-rate schedule (docs/metrics.md)",
        choices=SELECTION_METRICS,
    )
    selection_smoothing: float = option(
        0.7,
        "the best epoch, early stopping and the learning-rate schedule watch an exponential moving average of "
        "--selection-metric with this weight on the previous epochs (0: each epoch's own figure)",
    )
    seed: int = option(0, "seed of initialization, sampling and augmentation")
    deterministic: bool = option(
        False, "bit-identical training for a seed: TensorFlow on one CPU thread, deterministic kernels (slower; docs/models.md)"
    )
    warm_start: str | None = option(
        None,
        f"initialize from a pushed SavedModel (a path), or '{WARM_START_SERVED}': the served model, if any",
        path=True,
        keywords=(WARM_START_SERVED,),
    )
    mixed_precision: str | None = option(None, "GPU: compute in half precision", choices=("float16", "bfloat16"))
    jit_compile: bool = option(False, "compile training steps with XLA")
    patch_size: int | None = option(None, "train on PxP crops at --image-size (e.g. 96 with --image-size 256)")
    tumor_patch_fraction: float = option(0.5, "share of patches centered on tumor")
    inference_window: int | None = option(None, "exported model: tile slices larger than this (Gaussian blending)")
    context_slices: int = option(0, "add the K slices below and above as input channels (ingestion stores them)")
    postprocessing: bool = option(
        True, "export the plain 0.5 threshold instead of choosing threshold and minimum component size on the eval patients"
    )

    def __post_init__(self):
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.n_filters in N_FILTERS, f"n_filters must be one of {N_FILTERS}, got {self.n_filters}"),
            (1 <= self.depth <= 5, f"depth must be in 1..5, got {self.depth}"),
            (0.0 <= self.dropout_rate < 1.0, f"dropout_rate must be in [0, 1), got {self.dropout_rate}"),
            (
                self.image_size >= 2**self.depth and self.image_size % 2**self.depth == 0,
                f"image_size must be a multiple of 2**depth={2**self.depth}, got {self.image_size}",
            ),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.min_steps_per_epoch >= 1, f"min_steps_per_epoch must be >= 1, got {self.min_steps_per_epoch}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (
                0.0 <= self.positive_weight_exponent <= 1.0,
                f"positive_weight_exponent must be in [0, 1], got {self.positive_weight_exponent}",
            ),
            (
                0.0 <= self.tumor_slice_fraction < 1.0,
                f"tumor_slice_fraction must be in [0, 1), got {self.tumor_slice_fraction}",
            ),
            (
                0.0 <= self.hard_negative_fraction < 1.0,
                f"hard_negative_fraction must be in [0, 1), got {self.hard_negative_fraction}",
            ),
            (
                self.hard_negative_fraction == 0.0 or self.tumor_slice_fraction > 0.0,
                "hard_negative_fraction needs oversampling (tumor_slice_fraction > 0), "
                f"got hard_negative_fraction={self.hard_negative_fraction} with tumor_slice_fraction=0",
            ),
            (
                not (self.deterministic and self.hard_negative_fraction > 0.0),
                "deterministic training cannot draw hard negatives (how many draws tf.data prefetches before the pool "
                f"changes depends on thread timing), got hard_negative_fraction={self.hard_negative_fraction}",
            ),
            (
                0.0 <= self.background_structures <= 1.0,
                f"background_structures must be in [0, 1], got {self.background_structures}",
            ),
            (
                self.background_structures == 0.0 or self.augment,
                f"background_structures is an augmentation (augment=True), got {self.background_structures} with augment=False",
            ),
            (
                0.0 <= self.synthetic_lesions <= 1.0,
                f"synthetic_lesions must be in [0, 1], got {self.synthetic_lesions}",
            ),
            (
                self.synthetic_lesions == 0.0 or self.augment,
                f"synthetic_lesions is an augmentation (augment=True), got {self.synthetic_lesions} with augment=False",
            ),
            (self.coil_shading >= 0.0, f"coil_shading is a standard deviation (>= 0), got {self.coil_shading}"),
            (
                self.coil_shading == 0.0 or self.augment,
                f"coil_shading is an augmentation (augment=True), got {self.coil_shading} with augment=False",
            ),
            (
                self.selection_metric in SELECTION_METRICS,
                f"selection_metric must be one of {SELECTION_METRICS}, got {self.selection_metric!r}",
            ),
            (0.0 <= self.selection_smoothing < 1.0, f"selection_smoothing must be in [0, 1), got {self.selection_smoothing}"),
            (self.early_stopping_patience >= 1, f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}"),
            (
                self.prune_level is None or (self.model == "unetpp" and self.deep_supervision and 1 <= self.prune_level <= self.depth),
                "prune_level needs model='unetpp' with deep_supervision (the heads it keeps are trained only then) "
                f"and a level in 1..depth={self.depth}, got {self.prune_level}",
            ),
            (
                self.mixed_precision in (None, "float16", "bfloat16"),
                f"mixed_precision must be None, 'float16' or 'bfloat16', got {self.mixed_precision!r}",
            ),
            (
                self.patch_size is None or (self.patch_size % 2**self.depth == 0 and 2**self.depth <= self.patch_size <= self.image_size),
                f"patch_size must be a multiple of 2**depth={2**self.depth}, at most image_size={self.image_size}, got {self.patch_size}",
            ),
            (0 <= self.context_slices <= 3, f"context_slices must be in 0..3, got {self.context_slices}"),
            (0.0 <= self.tumor_patch_fraction <= 1.0, f"tumor_patch_fraction must be in [0, 1], got {self.tumor_patch_fraction}"),
            (
                self.inference_window is None or (self.inference_window % 2**self.depth == 0 and self.inference_window >= 2**self.depth),
                f"inference_window must be a multiple of 2**depth={2**self.depth}, got {self.inference_window}",
            ),
            (
                not self.deep_supervision or self.model == "unetpp",
                "deep_supervision is a UNet++ option (model='unetpp')",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def input_channels(self) -> int:
        """Channels of the network's input: 3 MR sequences per slice, 2K + 1 slices."""
        return 3 * (2 * self.context_slices + 1)

    def steps_per_epoch(self, slices: int) -> int:
        """Training steps per epoch for a train split of `slices` slices (see min_steps_per_epoch)."""
        return max(slices // self.batch_size, self.min_steps_per_epoch)

    def tumor_pixel_weight(self, positive_pixel_weight: float) -> float:
        """The weighted losses' tumor-pixel weight from the pipeline's negative / positive pixel ratio."""
        return positive_pixel_weight**self.positive_weight_exponent

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        return cls(**values)


def testing_config(**overrides) -> TrainingConfig:
    """A tiny configuration for tests: 32x32, depth 2, 8 filters, one epoch."""
    values = dict(image_size=32, depth=2, n_filters=8, batch_size=8, epochs=1, min_steps_per_epoch=1, early_stopping_patience=1)
    values.update(overrides)
    return TrainingConfig(**values)
