import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components.anomalies_gate import describe_anomalies, empty_splits


def write(path: str, message) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(message.SerializeToString())


def test_anomalies_are_described_per_split_and_feature(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["height"].description = "Unexpectedly large value: 512."
    write(str(tmp_path / "Split-train" / "SchemaDiff.pb"), anomalies)
    write(str(tmp_path / "Split-eval" / "SchemaDiff.pb"), anomalies_pb2.Anomalies())
    assert describe_anomalies(str(tmp_path), ["train", "eval"]) == ["split 'train': feature 'height': Unexpectedly large value: 512."]


@pytest.mark.parametrize("num_examples, expected", [(0, ["split 'test' has no slices"]), (5, [])])
def test_empty_split_is_reported(tmp_path, num_examples, expected):
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    statistics.datasets.add(num_examples=num_examples)
    write(str(tmp_path / "Split-test" / "FeatureStats.pb"), statistics)
    assert [line.split(" (")[0] for line in empty_splits(str(tmp_path), ["test"])] == expected
