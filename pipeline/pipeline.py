"""The pipeline, defined once; the runners are thin callers of `create_pipeline`.

ExampleGen (slices -> tf.Examples, split by patient) -> StatisticsGen ->
ImportSchemaGen (data_schema/schema.pbtxt, by content) -> ExampleValidator -> AnomaliesGate
(anomalies, empty splits, drift against the previous run's statistics) ->
PositivePixelWeight -> Trainer -> Evaluator (TFMA, gates the blessing
against thresholds and the served model) -> Pusher (one versioned directory
per push).

The served model (the Evaluator's baseline, and optionally the Trainer's warm
start) comes from a Resolver with LatestBlessedModelStrategy locally and on
Vertex, and from the LatestPushedModel component on open-source Kubeflow
Pipelines, which does not run Resolver nodes.
"""

import dataclasses
import hashlib
import importlib.resources
import pathlib

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components import pusher_executor, tfma_metrics
from components.anomalies_gate import AnomaliesGate
from components.curated_schema import CuratedSchema
from components.latest_artifact import LatestArtifactOrNoneStrategy
from components.latest_pushed_model import LatestPushedModel
from components.positive_pixel_weight.component import PositivePixelWeight
from components.slice_example_gen import executor as slice_executor
from core.contracts import MASK_OUTPUT, SERVING_SIGNATURE
from data_schema import features
from pipeline.config import SPLITS, PipelineConfig

TRAINER_RUN_FN = "models.trainer_module.run_fn"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What differs between the places the pipeline runs; each runner decides its own.

    resolvers: the orchestrator runs Resolver nodes. Then the served model
      (the Evaluator's baseline, the warm start) is the latest blessed model
      and the drift check compares with the previous statistics; without them
      (open-source KFP: "resolver executors not implemented") the served model
      is read from the push destination by LatestPushedModel, and there is no
      drift check.
    custom_resolver_strategies: Resolvers may use our strategy class (a first
      run resolves nothing without failing); Vertex compiles TFX's own only.
    trainer_resources: a Kubeflow V2 ResourceSpec (CPU, memory, GPUs) for the
      Trainer (LocalDagRunner rejects platform configs).
    """

    resolvers: bool = True
    custom_resolver_strategies: bool = True
    trainer_resources: object | None = None


LOCAL = Capabilities()


def code_fingerprint(*packages: str) -> str:
    """Hash of every Python source and data file of `packages` (dotted names), recursively.

    The Trainer names its code by module path (`run_fn`) and our ExampleGen
    executor by class, and TFX's cache key sees neither file: passing this hash
    in `custom_config` makes edited code re-run instead of serving a stale
    cached result. Whole layers are hashed, so no file list needs upkeep.
    """
    digest = hashlib.sha256()
    for package in packages:
        root = pathlib.Path(str(importlib.resources.files(package)))
        for path in sorted(path for path in root.rglob("*") if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts):
            digest.update(f"{package}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


SOURCE_SUFFIXES = (".py", ".pbtxt")
# The layers each step's code lives in (see the import-linter contracts in pyproject.toml).
MODEL_CODE = ("models", "core", "data_schema")
INGESTION_CODE = ("components.slice_example_gen", "core", "data_schema")


def _bounds(lower_bound: float | None = None, upper_bound: float | None = None) -> tfma.MetricThreshold:
    """The candidate's value must lie in [lower_bound, upper_bound] (None: unbounded on that side)."""
    bounds = {name: {"value": value} for name, value in (("lower_bound", lower_bound), ("upper_bound", upper_bound)) if value is not None}
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bounds))


def _no_regression(tolerance: float, higher_is_better: bool = True) -> tfma.MetricThreshold:
    """Candidate minus served model at most `tolerance` worse, in the metric's own units."""
    direction = tfma.MetricDirection.HIGHER_IS_BETTER if higher_is_better else tfma.MetricDirection.LOWER_IS_BETTER
    change = tfma.GenericChangeThreshold(direction=direction, absolute={"value": -tolerance if higher_is_better else tolerance})
    return tfma.MetricThreshold(change_threshold=change)


def blessing_gates(config: PipelineConfig) -> dict[str, list[tfma.PerSliceMetricThreshold]]:
    """Metric name -> its thresholds, each on the slices it names (the `none` bucket has no Dice).

    On the test split, overall: dice_per_tumor_slice_mean >= min_tumor_slice_dice,
    dice_per_patient_mean >= min_patient_dice, empty_slice_fp_rate <=
    max_empty_slice_fp_rate. Against the served model (TFX adds it as the
    baseline; without one, change thresholds are skipped): the two Dice at
    most max_dice_regression lower (the tumor-slice Dice on small-tumor slices
    too, with small_tumor_guard), empty_slice_fp_rate at most
    max_fp_rate_regression higher. A gate set to None is left out.
    """
    overall = tfma.SlicingSpec()
    small = tfma.SlicingSpec(feature_values={features.TUMOR_SIZE_BUCKET: features.BUCKET_SMALL})

    def on(slices, threshold):
        return tfma.PerSliceMetricThreshold(slicing_specs=slices, threshold=threshold)

    gates = {
        "dice_per_tumor_slice_mean": [
            on([overall], _bounds(lower_bound=config.min_tumor_slice_dice)),
            on([overall, small] if config.small_tumor_guard else [overall], _no_regression(config.max_dice_regression)),
        ],
        "dice_per_patient_mean": [
            on([overall], _bounds(lower_bound=config.min_patient_dice)),
            on([overall], _no_regression(config.max_dice_regression)),
        ],
        "empty_slice_fp_rate": [],
    }
    if config.max_empty_slice_fp_rate is not None:
        gates["empty_slice_fp_rate"].append(on([overall], _bounds(upper_bound=config.max_empty_slice_fp_rate)))
    if config.max_fp_rate_regression is not None:
        gates["empty_slice_fp_rate"].append(on([overall], _no_regression(config.max_fp_rate_regression, higher_is_better=False)))
    return {name: thresholds for name, thresholds in gates.items() if thresholds}


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA: the segmentation metrics overall and by tumor-size bucket; the blessing gates of `blessing_gates`."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_SIGNATURE,
                label_key=features.MASK,
                prediction_key=MASK_OUTPUT,  # the post-processed mask, as users get it
                model_type=tfma.TF_GENERIC,
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.TUMOR_SIZE_BUCKET])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=tfma_metrics.SegmentationMetrics.__name__, module=tfma_metrics.__name__)],
                example_weights=tfma.ExampleWeightOptions(unweighted=True),
                per_slice_thresholds={
                    name: tfma.PerSliceMetricThresholds(thresholds=thresholds) for name, thresholds in blessing_gates(config).items()
                },
            )
        ],
    )


def _served_model(config: PipelineConfig, capabilities: Capabilities, fallback=None, name: str = "served_model"):
    """A node whose `model` output is the currently served model (see the module docstring)."""
    if not capabilities.resolvers:
        return LatestPushedModel(push_destination=config.serving_dir, fallback=fallback).with_id(f"latest_pushed_{name}")
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(f"latest_blessed_{name}")


def create_pipeline(config: PipelineConfig, capabilities: Capabilities = LOCAL) -> tfx.dsl.Pipeline:
    """The pipeline of `config`, shaped by what the orchestrator can do (`capabilities`).

    The runner that executes or compiles it sets the metadata connection.
    """
    slice_files = slice_executor.SLICE_FILES_PATTERN
    example_gen = FileBasedExampleGen(
        input_base=config.data_dir,
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(
                    name="all", pattern=f"{config.ingestion.span_pattern}/{slice_files}" if config.ingestion.span_pattern else slice_files
                )
            ]
        ),
        output_config=slice_executor.split_by_patient(SPLITS, config.ingestion.split_hash_buckets),
        custom_config=slice_executor.make_custom_config(
            max_rejected_fraction=config.ingestion.max_rejected_fraction,
            small_max_pixels=config.ingestion.small_max_pixels,
            medium_max_pixels=config.ingestion.medium_max_pixels,
            context_slices=config.training.context_slices,
            **dataclasses.asdict(config.ingestion.volumes),
            code_version=code_fingerprint(*INGESTION_CODE),
        ),
        custom_executor_spec=executor_spec.BeamExecutorSpec(slice_executor.Executor),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    with open(features.schema_path()) as schema_file:
        schema_gen = CuratedSchema(schema_text=schema_file.read()).with_id("ImportSchemaGen")
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    components = [example_gen, statistics_gen, schema_gen, example_validator]
    previous_statistics = None
    if config.max_drift is not None and capabilities.resolvers:
        previous_statistics = tfx.dsl.Resolver(
            # Vertex compiles only TFX's own strategy (into a query that tolerates no match).
            strategy_class=LatestArtifactOrNoneStrategy
            if capabilities.custom_resolver_strategies
            else tfx.dsl.experimental.LatestArtifactStrategy,
            statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics),
        ).with_id("previous_statistics")
        statistics_gen.add_upstream_node(previous_statistics)  # resolve before this run's statistics exist
        components.append(previous_statistics)
    anomalies_gate = AnomaliesGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        # max_drift is read only with previous statistics, which exist only when the check is on.
        previous_statistics=previous_statistics.outputs["statistics"] if previous_statistics else None,
        **({"max_drift": config.max_drift} if previous_statistics else {}),
    )
    positive_pixel_weight = PositivePixelWeight(examples=example_gen.outputs["examples"], split="train")
    positive_pixel_weight.add_upstream_node(anomalies_gate)
    components += [anomalies_gate, positive_pixel_weight]

    warm_start = None
    if config.warm_start_from_served:
        warm_start = _served_model(config, capabilities, name="model_for_warm_start")
        components.append(warm_start)
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=positive_pixel_weight.outputs["hyperparameters"],
        base_model=warm_start.outputs["model"] if warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"training": dataclasses.asdict(config.training), "model_code": code_fingerprint(*MODEL_CODE)},
    )
    if capabilities.trainer_resources is not None:
        trainer.with_platform_config(capabilities.trainer_resources)
    baseline = _served_model(config, capabilities, fallback=trainer.outputs["model"], name="baseline")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config(config),
        example_splits=["test"],
    )
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)),
    )
    components += [trainer, baseline, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
