"""AnomaliesGate: stops the run before training when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the pipeline go on; this small
component fails with a message that says what is wrong, and the components
that train depend on it.
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils


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


@tfx.dsl.components.component
def AnomaliesGate(  # noqa: N802
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
) -> None:
    found = empty_splits(statistics.uri, artifact_utils.decode_split_names(statistics.split_names))
    found += describe_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if found:
        raise DataValidationError(f"data validation failed: {'; '.join(found)} (anomalies in {anomalies.uri})")
