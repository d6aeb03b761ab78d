"""What a finished local run did, read back from ML Metadata and the artifacts.

- `component_timings`: per pipeline node, the state (complete / cached) and
  duration of its latest execution;
- `evaluation_by_bucket`: the Evaluator's metrics, overall and per tumor-size bucket;
- `split_statistics`: slices, patients and tumor-size buckets per split, and
  `few_patients_warnings`, a line for each split with too few patients to
  choose or judge a model on;
- the blessing, and where the Pusher pushed the model.
"""

import dataclasses
import json
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from core import contracts, metrics
from data_schema import features
from pipeline.config import SPLITS

# Below this many patients in eval (or test), the summary says that the epoch and the
# post-processing (or the test metrics and the blessing) rest on very few patients.
FEW_PATIENTS = contracts.MIN_PATIENTS_PER_SPLIT

_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
}


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    component: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


@dataclasses.dataclass(frozen=True)
class RunSummary:
    components: list[ComponentRun]
    metrics_by_slice: dict[str, dict[str, float]]
    blessed: bool | None
    pushed_to: str | None
    positive_pixel_weight: float | None
    rejected_files: int | None = None  # listed in `rejected_list`
    rejected_list: str | None = None
    splits: dict[str, dict] | None = None  # `split_statistics` of StatisticsGen's output

    @property
    def patients_by_split(self) -> dict[str, int]:
        return {split: stats["patients"] for split, stats in (self.splits or {}).items()}


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    if not os.path.isfile(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}: has the pipeline run?")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_component_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[ComponentRun]:
    """The latest execution of every node of the pipeline, in execution order."""
    runs = []
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(pipeline_name + "."):
            continue
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        latest = max(executions, key=lambda execution: (execution.create_time_since_epoch, execution.id))
        artifact_ids: dict[str, list[int]] = {}
        for event in store.get_events_by_execution_ids([latest.id]):
            if event.type == metadata_store_pb2.Event.OUTPUT and event.path.steps:
                artifact_ids.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
        outputs = {key: list(store.get_artifacts_by_id(ids)) for key, ids in artifact_ids.items()}
        seconds = (latest.last_update_time_since_epoch - latest.create_time_since_epoch) / 1000.0
        runs.append(
            (
                latest.create_time_since_epoch,
                ComponentRun(context.name[len(pipeline_name) + 1 :], _STATES.get(latest.last_known_state, "unknown"), seconds, outputs),
            )
        )
    return [run for _, run in sorted(runs, key=lambda pair: pair[0])]


def split_names(artifact: metadata_store_pb2.Artifact) -> list[str]:
    """The splits of an MLMD artifact (Examples, ExampleStatistics, ExampleAnomalies)."""
    for properties in (artifact.properties, artifact.custom_properties):
        if "split_names" in properties:
            return json.loads(properties["split_names"].string_value)
    return []


def _artifact(runs: list[ComponentRun], component: str, key: str):
    for run in runs:
        if run.component == component and run.outputs.get(key):
            return run.outputs[key][0]
    return None


def evaluation_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """Slice name ('overall' or the bucket) -> metric name -> value, from a TFMA output folder."""
    import tensorflow_model_analysis as tfma  # heavy: only when reading an evaluation

    result = tfma.load_eval_result(evaluation_uri)
    by_slice = {}
    for slice_key, values in result.slicing_metrics:
        name = contracts.OVERALL if not slice_key else str(dict(slice_key).popitem()[1])
        flat = values.get("", {}).get("", {})
        by_slice[name] = {key: float(flat[key]["doubleValue"]) for key in metrics.METRIC_KEYS if key in flat}
    return by_slice


def split_statistics(statistics_uri: str) -> dict[str, dict]:
    """Split -> {'slices', 'patients', 'buckets': {bucket: slices}} from StatisticsGen's output."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    result = {}
    for split_dir in sorted(tf.io.gfile.glob(os.path.join(statistics_uri, "Split-*"))):
        if not tf.io.gfile.exists(os.path.join(split_dir, "FeatureStats.pb")):
            continue  # an interrupted StatisticsGen: the summary of a failed run must not fail too
        with tf.io.gfile.GFile(os.path.join(split_dir, "FeatureStats.pb"), "rb") as source:
            dataset = statistics_pb2.DatasetFeatureStatisticsList.FromString(source.read()).datasets[0]
        summary = {"slices": dataset.num_examples, "patients": None, "buckets": {}}
        for feature in dataset.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            if name == features.CASE_ID:
                summary["patients"] = feature.string_stats.unique
            if name == features.TUMOR_SIZE_BUCKET:
                summary["buckets"] = {bucket.label: int(bucket.sample_count) for bucket in feature.string_stats.rank_histogram.buckets}
        result[os.path.basename(split_dir)[len("Split-") :]] = summary
    return result


def summarize_run(metadata_path: str, pipeline_name: str) -> RunSummary:
    store = open_store(metadata_path)
    runs = latest_component_runs(store, pipeline_name)
    evaluation = _artifact(runs, "Evaluator", "evaluation")
    blessing = _artifact(runs, "Evaluator", "blessing")
    pushed = _artifact(runs, "Pusher", "pushed_model")
    weights = _artifact(runs, "PositivePixelWeight", "hyperparameters")
    weight = None
    if weights is not None and os.path.isfile(os.path.join(weights.uri, contracts.HYPERPARAMETERS_FILE)):
        with open(os.path.join(weights.uri, contracts.HYPERPARAMETERS_FILE)) as source:
            weight = json.load(source).get(contracts.POSITIVE_PIXEL_WEIGHT)
    rejected_files = rejected_list = None
    examples = _artifact(runs, "FileBasedExampleGen", "examples")
    if examples is not None and os.path.isfile(os.path.join(examples.uri, contracts.REJECTED_FILE)):
        rejected_list = os.path.join(examples.uri, contracts.REJECTED_FILE)
        with open(rejected_list) as source:
            rejected_files = max(sum(1 for _ in source) - 1, 0)
    statistics = _artifact(runs, "StatisticsGen", "statistics")
    pushed_to = None
    if pushed is not None and pushed.custom_properties.get("pushed") and pushed.custom_properties["pushed"].int_value:
        pushed_to = pushed.custom_properties["pushed_destination"].string_value
    return RunSummary(
        components=runs,
        metrics_by_slice=evaluation_metrics(evaluation.uri) if evaluation is not None else {},
        blessed=bool(blessing.custom_properties["blessed"].int_value)
        if blessing is not None and "blessed" in blessing.custom_properties
        else None,
        pushed_to=pushed_to,
        positive_pixel_weight=weight,
        rejected_files=rejected_files,
        rejected_list=rejected_list,
        splits=split_statistics(statistics.uri) if statistics is not None else None,
    )


def few_patients_warnings(patients_by_split: dict[str, int]) -> list[str]:
    """One line per split that holds fewer than FEW_PATIENTS patients, saying what rests on them."""
    rests_on = {
        "eval": "the best epoch, early stopping and the post-processing were chosen on so few",
        "test": "the test metrics and the blessing rest on so few",
    }
    lines = []
    for split, what in rests_on.items():
        count = patients_by_split.get(split)
        if count is not None and count < FEW_PATIENTS:
            lines.append(
                f"Only {count} patient{'' if count == 1 else 's'} in the {split} split: {what}"
                f" (a dataset needs {FEW_PATIENTS * len(patients_by_split)} patients for {FEW_PATIENTS} in every split;"
                " see docs/data.md#splits-by-patient)"
            )
    return lines


def format_summary(summary: RunSummary) -> str:
    """The summary as plain-text tables."""
    lines = ["Components:"]
    for run in summary.components:
        lines.append(f"  {run.component:<22} {run.state:<9} {run.seconds:8.1f} s")
    total = sum(run.seconds for run in summary.components)
    lines.append(f"  {'total':<22} {'':<9} {total:8.1f} s")
    if summary.rejected_files is not None:
        lines.append(f"Rejected files: {summary.rejected_files} (list in {summary.rejected_list})")
    patients = summary.patients_by_split
    if patients:
        lines.append("Patients per split: " + ", ".join(f"{split} {patients[split]}" for split in SPLITS if split in patients))
        lines.extend(few_patients_warnings(patients))
    if summary.positive_pixel_weight is not None:
        lines.append(
            f"Positive-pixel weight (negative / positive pixels, train split): {summary.positive_pixel_weight:.1f}"
            " (the weighted losses use it to the power --positive-weight-exponent; `unet4mri report` shows the result)"
        )
    if summary.metrics_by_slice:
        order = contracts.REPORTED_SLICES
        names = [name for name in order if name in summary.metrics_by_slice]
        lines.append("Evaluation on the test patients (after the model's post-processing; definitions in docs/metrics.md):")
        lines.append(f"  {'metric':<28}" + "".join(f"{name:>10}" for name in names))
        for key in metrics.METRIC_KEYS:
            cells = []
            for name in names:
                value = summary.metrics_by_slice[name].get(key, float("nan"))
                cells.append(f"{value:>10.3f}" if value == value else f"{'-':>10}")
            lines.append(f"  {key:<28}" + "".join(cells))
    lines.append(f"Blessed: {'yes' if summary.blessed else 'no'}")
    lines.append(f"Pushed to: {summary.pushed_to}" if summary.pushed_to else "Pushed: no (model not blessed or push skipped)")
    return "\n".join(lines)
