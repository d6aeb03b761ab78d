"""The pipeline, defined once; the runners are thin callers of `create_pipeline`.

ExampleGen (slices -> tf.Examples, split by patient) -> StatisticsGen ->
ImportSchemaGen (data_schema/schema.pbtxt) -> ExampleValidator -> AnomaliesGate
-> PositivePixelWeight -> Trainer -> Evaluator (TFMA, gates the blessing) ->
Pusher (one versioned directory per push).
"""

import dataclasses
import hashlib
import importlib.resources

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components import tfma_metrics
from components.anomalies_gate import AnomaliesGate
from components.positive_pixel_weight.component import PositivePixelWeight
from components.slice_example_gen import executor as slice_executor
from data_schema import features
from models.export import PROBABILITIES, SERVING_SIGNATURE
from pipeline.config import SPLITS, PipelineConfig

TRAINER_RUN_FN = "models.trainer_module.run_fn"
BLESSING_METRIC = "dice_per_tumor_slice_mean"


def model_code_fingerprint() -> str:
    """Hash of the trainer's source (models/, the metrics, the features).

    The Trainer names its code by module path (`run_fn`), which TFX's cache
    key does not see; passing this hash in `custom_config` makes an edited
    model retrain instead of reusing a stale cached one.
    """
    digest = hashlib.sha256()
    sources = sorted(importlib.resources.files("models").glob("*.py")) + [
        importlib.resources.files("unet4mri") / "metrics.py",
        importlib.resources.files("data_schema") / "features.py",
    ]
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA: the segmentation metrics overall and by tumor-size bucket; the gate on the overall slice."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_SIGNATURE,
                label_key=features.MASK,
                prediction_key=PROBABILITIES,
                model_type=tfma.TF_GENERIC,
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.TUMOR_SIZE_BUCKET])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=tfma_metrics.SegmentationMetrics.__name__, module=tfma_metrics.__name__)],
                example_weights=tfma.ExampleWeightOptions(unweighted=True),
                # The gate applies to the overall slice only: the `none` bucket has no tumor-slice Dice.
                per_slice_thresholds={
                    BLESSING_METRIC: tfma.PerSliceMetricThresholds(
                        thresholds=[
                            tfma.PerSliceMetricThreshold(
                                slicing_specs=[tfma.SlicingSpec()],
                                threshold=tfma.MetricThreshold(
                                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_tumor_slice_dice}),
                                ),
                            )
                        ]
                    )
                },
            )
        ],
    )


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    example_gen = FileBasedExampleGen(
        input_base=config.data_dir,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern=slice_executor.SLICE_FILES_PATTERN)]),
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets) for name, buckets in zip(SPLITS, config.split_hash_buckets)
                ],
                partition_feature_name=features.CASE_ID,
            )
        ),
        custom_config=slice_executor.make_custom_config(
            max_rejected_fraction=config.max_rejected_fraction,
            small_max_pixels=config.small_max_pixels,
            medium_max_pixels=config.medium_max_pixels,
        ),
        custom_executor_spec=executor_spec.BeamExecutorSpec(slice_executor.Executor),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=features.schema_path())
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"], statistics=statistics_gen.outputs["statistics"])
    positive_pixel_weight = PositivePixelWeight(examples=example_gen.outputs["examples"], split="train")
    positive_pixel_weight.add_upstream_node(anomalies_gate)
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=positive_pixel_weight.outputs["hyperparameters"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"training": dataclasses.asdict(config.training), "model_code": model_code_fingerprint()},
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=eval_config(config),
        example_splits=["test"],
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            anomalies_gate,
            positive_pixel_weight,
            trainer,
            evaluator,
            pusher,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
