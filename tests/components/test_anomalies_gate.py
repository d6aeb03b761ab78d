import os
import shutil

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components.anomalies_gate import describe_anomalies, describe_drift, drift, empty_splits
from data_schema import features


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


@pytest.fixture(scope="module")
def span_statistics(tiny_dataset, tmp_path_factory):
    """Train-split statistics of the tiny dataset, of a copy of it, and of a copy scanned 1.5x brighter."""
    import numpy as np
    import tensorflow_data_validation as tfdv
    import tifffile

    from core import slices
    from tests.components.test_slice_example_gen import run_executor

    root = tmp_path_factory.mktemp("spans")
    uris = {}
    for name, gain in (("before", 1.0), ("same", 1.0), ("brighter", 1.5)):
        data = root / f"{name}_data"
        shutil.copytree(tiny_dataset, data)
        for pair in slices.find_slice_pairs(str(data)):
            if gain != 1.0:
                image = tifffile.imread(pair.image_path).astype(np.float32) * gain
                tifffile.imwrite(pair.image_path, np.clip(image, 0, 255).astype(np.uint8))
        run_executor(str(data), str(root / f"{name}_examples"))
        statistics = tfdv.generate_statistics_from_tfrecord(str(root / f"{name}_examples" / "Split-train" / "*"))
        write(str(root / f"{name}_statistics" / "Split-train" / "FeatureStats.pb"), statistics)
        uris[name] = str(root / f"{name}_statistics")
    return uris


def test_drift_is_zero_for_the_same_data_and_stops_a_brighter_scanner(span_statistics):
    same = drift(span_statistics["same"], span_statistics["before"], max_drift=0.05)
    assert set(same) == set(features.DRIFT_FEATURES) and max(same.values()) < 1e-6
    brighter = drift(span_statistics["brighter"], span_statistics["before"], max_drift=0.05)
    assert brighter[features.TUMOR_PIXEL_FRACTION] < 1e-6  # same masks
    assert min(brighter[name] for name in features.MEAN_INTENSITIES) > 0.05
    lines = describe_drift(span_statistics["brighter"], span_statistics["before"], max_drift=0.05)
    assert [line.split("'")[3] for line in lines] == sorted(features.MEAN_INTENSITIES)
    assert "Jensen-Shannon divergence" in lines[0] and "max_drift=0.05" in lines[0]
    assert describe_drift(span_statistics["same"], span_statistics["before"], max_drift=0.05) == []
