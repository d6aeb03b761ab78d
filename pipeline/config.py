"""Pipeline configuration: one frozen, validated object."""

import dataclasses
import os

from data_schema import features
from models.config import TrainingConfig, testing_config

SPLITS = ("train", "eval", "test")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Where the data and outputs are, and how the pipeline splits, trains and gates.

    data_dir: root of the slices in the kaggle_3m layout.
    output_dir: everything the pipeline writes: `tfx/` (artifacts),
      `metadata.sqlite` (ML Metadata), `serving_model/<version>/` (pushed models).
    split_hash_buckets: patients are assigned to train / eval / test by a hash
      of their case id in these proportions (the Trainer validates on `eval`,
      the Evaluator reports on `test`): no patient is in two splits, and a
      patient keeps its split when others are added.
    min_tumor_slice_dice: the Evaluator blesses (and the Pusher pushes) only a
      model whose `dice_per_tumor_slice_mean` on the test split reaches this.
    max_dice_regression: once a model is served, a candidate is blessed only if
      its `dice_per_tumor_slice_mean`, overall and on small-tumor slices, is at
      most this much below the served model's (0: never worse).
    guard_small_tumors: apply the regression check to small-tumor slices too
      (the test split must then hold small tumors: TFMA fails a threshold on a missing slice).
    span_pattern: read data in spans, e.g. "span-{SPAN}" for folders
      `data_dir/span-1/`, `span-2/`, ...: each run ingests the latest span.
    warm_start_from_served: initialize training from the served model, if any.
    max_drift: the run stops before training when the train split's tumor-pixel
      fraction or a channel's mean intensity moved further than this
      Jensen-Shannon divergence from the previous run's (None: no drift check;
      not available on open-source KFP, which runs no Resolver).
    """

    data_dir: str
    output_dir: str
    pipeline_name: str = "unet4mri"
    training: TrainingConfig = TrainingConfig()
    split_hash_buckets: tuple[int, int, int] = (14, 3, 3)
    small_max_pixels: int = features.DEFAULT_SMALL_MAX_PIXELS
    medium_max_pixels: int = features.DEFAULT_MEDIUM_MAX_PIXELS
    max_rejected_fraction: float = 0.0
    min_tumor_slice_dice: float = 0.5
    max_dice_regression: float = 0.0
    guard_small_tumors: bool = True
    span_pattern: str | None = None
    warm_start_from_served: bool = False
    max_drift: float | None = 0.05
    beam_pipeline_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    enable_cache: bool = True

    def __post_init__(self):
        if len(self.split_hash_buckets) != len(SPLITS) or min(self.split_hash_buckets) < 1:
            raise ValueError(f"split_hash_buckets needs {len(SPLITS)} positive numbers, got {self.split_hash_buckets}")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            raise ValueError(f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}")
        if not 0.0 <= self.max_dice_regression <= 1.0:
            raise ValueError(f"max_dice_regression must be in [0, 1], got {self.max_dice_regression}")
        if self.span_pattern is not None and "{SPAN}" not in self.span_pattern:
            raise ValueError(f"span_pattern must contain {{SPAN}}, got {self.span_pattern!r}")
        if self.max_drift is not None and not 0.0 < self.max_drift <= 1.0:
            raise ValueError(f"max_drift must be in (0, 1] or None, got {self.max_drift}")
        if not 0.0 <= self.min_tumor_slice_dice <= 1.0:
            raise ValueError(f"min_tumor_slice_dice must be in [0, 1], got {self.min_tumor_slice_dice}")
        features.tumor_size_bucket(0, self.small_max_pixels, self.medium_max_pixels)  # validates the thresholds

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "tfx")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.output_dir, "serving_model")


def testing_pipeline_config(data_dir: str, output_dir: str, **overrides) -> PipelineConfig:
    """A tiny configuration for tests: the tiny training config, no quality gate, no drift check."""
    values = dict(training=testing_config(), min_tumor_slice_dice=0.0, max_drift=None)  # tiny spans differ by chance
    values.update(overrides)
    return PipelineConfig(data_dir=data_dir, output_dir=output_dir, **values)
