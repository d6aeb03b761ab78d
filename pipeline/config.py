"""Pipeline configuration: one frozen, validated object with a section per concern.

`PipelineConfig` holds where the data and outputs are, the quality gates, and
two sections: `ingestion` (what ExampleGen reads and how it splits and
buckets) and `training` (`models.config.TrainingConfig`). Every field declared
with `option(...)` is also a command-line option (`unet4mri.config_options`).
"""

import dataclasses
import os

from core.config_fields import option
from core.volumes import VolumeLayout
from data_schema import features
from models.config import WARM_START_SERVED, TrainingConfig, testing_config

SPLITS = ("train", "eval", "test")


@dataclasses.dataclass(frozen=True)
class IngestionConfig:
    """What ExampleGen reads, and how it splits and buckets it.

    split_hash_buckets: patients are assigned to train / eval / test by a hash
      of their case id in these proportions (the Trainer validates on `eval`,
      the Evaluator reports on `test`): no patient is in two splits. Data
      with at least 9 patients gets at least 3 in every split, moved there
      from the largest split when the hash left fewer
      (components.slice_example_gen.executor.assign_splits).
    span_pattern: read data in spans, e.g. "span-{SPAN}" for folders
      `data_dir/span-1/`, `span-2/`, ...: each run ingests the latest span.
    volumes: for BraTS-style NIfTI/DICOM case folders (detected by their
      files), the name suffixes of the contrasts and the label, and the labels
      that are tumor (`core.volumes.VolumeLayout`).
    """

    split_hash_buckets: tuple[int, int, int] = option((14, 3, 3), "hash buckets of the train, eval and test patients")
    small_max_pixels: int = option(features.DEFAULT_SMALL_MAX_PIXELS, "largest tumor (pixels, native size) in the small bucket")
    medium_max_pixels: int = option(features.DEFAULT_MEDIUM_MAX_PIXELS, "largest tumor (pixels, native size) in the medium bucket")
    max_rejected_fraction: float = option(0.0, "share of unreadable slices tolerated before the run fails")
    span_pattern: str | None = option(None, "read the latest span, e.g. 'span-{SPAN}' for DATA_DIR/span-1/, span-2/, ...")
    volumes: VolumeLayout = VolumeLayout()

    def __post_init__(self):
        if len(self.split_hash_buckets) != len(SPLITS) or min(self.split_hash_buckets) < 1:
            raise ValueError(f"split_hash_buckets needs {len(SPLITS)} positive numbers, got {self.split_hash_buckets}")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            raise ValueError(f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}")
        if self.span_pattern is not None and "{SPAN}" not in self.span_pattern:
            raise ValueError(f"span_pattern must contain {{SPAN}}, got {self.span_pattern!r}")
        features.tumor_size_bucket(0, self.small_max_pixels, self.medium_max_pixels)  # validates the thresholds


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Where the data and outputs are, and how the pipeline gates.

    data_dir: root of the data: TIFF slices in the kaggle_3m layout, or BraTS-style
      case folders of NIfTI volumes or DICOM series (detected by the files).
    output_dir: everything the pipeline writes: `tfx/` (artifacts),
      `metadata.sqlite` (ML Metadata), `serving_model/<version>/` (pushed models).
    min_tumor_slice_dice: the Evaluator blesses (and the Pusher pushes) only a
      model whose `dice_per_tumor_slice_mean` on the test split reaches this.
    min_patient_dice: ... and whose `dice_per_patient_mean` reaches this
      (tumor painted on healthy slices lowers it; the tumor-slice Dice does not see it).
    max_empty_slice_fp_rate: ... and whose `empty_slice_fp_rate` is at most this
      (None: no ceiling).
    max_dice_regression: once a model is served, a candidate is blessed only if
      its `dice_per_tumor_slice_mean`, overall and on small-tumor slices, and
      its `dice_per_patient_mean`, overall, are at most this much below the
      served model's (0: never worse).
    max_fp_rate_regression: ... and its `empty_slice_fp_rate` at most this much
      above the served model's (0: never worse; None: not compared).
      TFMA fails a threshold whose metric is NaN: a test split without
      tumor-free slices needs both empty-slice gates off.
    small_tumor_guard: apply the regression check to small-tumor slices too
      (the test split must then hold small tumors: TFMA fails a threshold on a missing slice).
    max_drift: the run stops before training when the train split's tumor-pixel
      fraction or a channel's mean intensity moved further than this
      Jensen-Shannon divergence from the previous run's (None: no drift check;
      not available on open-source KFP, which runs no Resolver).
    """

    data_dir: str
    output_dir: str
    pipeline_name: str = "unet4mri"
    ingestion: IngestionConfig = IngestionConfig()
    training: TrainingConfig = TrainingConfig()
    min_tumor_slice_dice: float = option(0.5, "blessing: lowest dice_per_tumor_slice_mean on the test split")
    min_patient_dice: float = option(0.7, "blessing: lowest dice_per_patient_mean on the test split")
    max_empty_slice_fp_rate: float | None = option(0.15, "blessing: highest empty_slice_fp_rate on the test split")
    max_dice_regression: float = option(0.0, "tolerated drop of the tumor-slice and per-patient Dice against the served model")
    max_fp_rate_regression: float | None = option(0.0, "tolerated rise of empty_slice_fp_rate against the served model")
    small_tumor_guard: bool = option(True, "check regressions on all slices only, not on small-tumor slices too")
    max_drift: float | None = option(0.05, "stop when a drift feature's Jensen-Shannon divergence from the previous run exceeds this")
    beam_pipeline_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    enable_cache: bool = True

    def __post_init__(self):
        if self.max_drift is not None and not 0.0 < self.max_drift <= 1.0:
            raise ValueError(f"max_drift must be in (0, 1] or None, got {self.max_drift}")
        gates = ("min_tumor_slice_dice", "min_patient_dice", "max_empty_slice_fp_rate", "max_dice_regression", "max_fp_rate_regression")
        for name in gates:
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    @property
    def warm_start_from_served(self) -> bool:
        return self.training.warm_start == WARM_START_SERVED

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "tfx")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.output_dir, "serving_model")


def testing_pipeline_config(data_dir: str, output_dir: str, ingestion: IngestionConfig | None = None, **overrides) -> PipelineConfig:
    """A tiny configuration for tests: the tiny training config, no quality gate, no drift check.

    The regression checks stay, but not on the empty-slice rate: a tiny test
    split may have no tumor-free slice (rate NaN, which TFMA fails).
    """
    values = dict(
        training=testing_config(),
        min_tumor_slice_dice=0.0,
        min_patient_dice=0.0,
        max_empty_slice_fp_rate=None,
        max_fp_rate_regression=None,
        max_drift=None,  # tiny spans differ by chance
    )
    values.update(overrides)
    return PipelineConfig(data_dir=data_dir, output_dir=output_dir, ingestion=ingestion or IngestionConfig(), **values)
