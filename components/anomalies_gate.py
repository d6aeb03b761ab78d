"""AnomaliesGate: stops the run before training when the data is not fit to train on.

ExampleValidator records anomalies but lets the pipeline go on; this small
component fails with a message that says what is wrong, and the components
that train depend on it. It fails on
- anomalies against the curated schema (ExampleValidator's output);
- a split without slices (TFDV does not call that an anomaly);
- drift: when the statistics of the previous run are given, the train split's
  distributions of `features.DRIFT_FEATURES` (tumor-pixel fraction and the
  per-channel mean intensities) are compared with the previous ones by TFDV's
  Jensen-Shannon divergence; above `max_drift` the run stops (a new scanner,
  another intensity normalization, masks drawn another way).
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

from data_schema import features

DRIFT_SPLIT = "train"


class DataValidationError(ValueError):
    """The data does not match the curated schema."""


def _read_split(uri: str, split: str, file_name: str, message_class):
    with tf.io.gfile.GFile(os.path.join(uri, f"Split-{split}", file_name), "rb") as serialized:
        return message_class.FromString(serialized.read())


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomalous feature: `split 'train': feature 'height': <description>`."""
    lines = []
    for split in split_names:
        anomalies = _read_split(anomalies_uri, split, "SchemaDiff.pb", anomalies_pb2.Anomalies)
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"split '{split}': feature '{feature}': {info.description or info.short_description}")
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"split '{split}': {anomalies.dataset_anomaly_info.description}")
    return lines


def empty_splits(statistics_uri: str, split_names: list[str]) -> list[str]:
    """One line per split without examples (TFDV does not call that an anomaly)."""
    lines = []
    for split in split_names:
        statistics = _read_split(statistics_uri, split, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)
        if sum(dataset.num_examples for dataset in statistics.datasets) == 0:
            lines.append(f"split '{split}' has no slices (too few patients for the split proportions?)")
    return lines


def drift(statistics_uri: str, previous_uri: str, max_drift: float, split: str = DRIFT_SPLIT) -> dict[str, float]:
    """Jensen-Shannon divergence of each DRIFT_FEATURES distribution, `split` now against before."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name in features.DRIFT_FEATURES:
        feature = schema.feature.add(name=name, type=schema_pb2.FLOAT)
        feature.drift_comparator.jensen_shannon_divergence.threshold = max_drift
    current = _read_split(statistics_uri, split, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)
    previous = _read_split(previous_uri, split, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    return {
        info.path.step[0]: measurement.value
        for info in anomalies.drift_skew_info
        for measurement in info.drift_measurements
        if measurement.type == anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE
    }


def describe_drift(statistics_uri: str, previous_uri: str, max_drift: float) -> list[str]:
    """One line per drift feature whose divergence exceeds `max_drift`."""
    return [
        f"split '{DRIFT_SPLIT}': feature '{name}' drifted since the previous run "
        f"(Jensen-Shannon divergence {value:.3f} > max_drift={max_drift})"
        for name, value in sorted(drift(statistics_uri, previous_uri, max_drift).items())
        if value > max_drift
    ]


@tfx.dsl.components.component
def AnomaliesGate(  # noqa: N802
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    previous_statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics] = None,
    max_drift: tfx.dsl.components.Parameter[float] = 1.0,
) -> None:
    """Fail the run when the data is not fit to train on.

    Args:
      anomalies: ExampleValidator's `ExampleAnomalies` (`Split-<name>/SchemaDiff.pb`).
      statistics: this run's `ExampleStatistics` (`Split-<name>/FeatureStats.pb`).
      previous_statistics: the previous run's statistics, or None: no drift check
        (also skipped when it is this run's own artifact, a cached rerun).
      max_drift: the largest Jensen-Shannon divergence allowed on DRIFT_SPLIT.

    No outputs: the components that train depend on this one.

    Raises:
      DataValidationError: naming every empty split, anomaly and drifted feature.
    """
    found = empty_splits(statistics.uri, artifact_utils.decode_split_names(statistics.split_names))
    found += describe_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if previous_statistics is not None and previous_statistics.uri != statistics.uri and not found:
        found += describe_drift(statistics.uri, previous_statistics.uri, max_drift)
    if found:
        raise DataValidationError(f"data validation failed: {'; '.join(found)} (anomalies in {anomalies.uri})")
