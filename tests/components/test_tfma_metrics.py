import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from components import tfma_metrics
from core import metrics


def inputs(case_id: str, index: int, truth: np.ndarray, probabilities: np.ndarray) -> metric_types.StandardMetricInputs:
    return metric_types.StandardMetricInputs(
        labels=np.array([truth.astype(np.uint8).tobytes()], dtype=object),
        predictions={"probabilities": probabilities[None], "mask": (probabilities[None] > 0.5).astype(np.uint8)},
        features={"case_id": np.array([case_id.encode()], dtype=object), "slice_index": np.array([index])},
    )


def test_combiner_gives_the_reference_metrics():
    rng = np.random.default_rng(0)
    elements, counts = [], []
    for case in ("A", "B", "C"):
        for index in range(4):
            truth = (rng.random((6, 5)) > 0.6) if index else np.zeros((6, 5), bool)
            probabilities = rng.random((6, 5)).astype(np.float32)
            elements.append(inputs(case, index, truth, probabilities))
            counts.append(metrics.slice_counts(truth, probabilities, case, index))
    computation = tfma_metrics.SegmentationMetrics().computations()[0]
    combiner = computation.combiner
    halves = []
    for part in (elements[:5], elements[5:]):  # as Beam would: partial accumulators, then merged
        accumulator = combiner.create_accumulator()
        for element in part:
            accumulator = combiner.add_input(accumulator, element)
        halves.append(accumulator)
    output = combiner.extract_output(combiner.merge_accumulators(halves))
    expected = metrics.summarize(counts)
    assert {key.name for key in output} == set(metrics.METRIC_KEYS)
    for key, value in output.items():
        assert key.example_weighted is None  # matches the keys TFMA builds for thresholds
        assert value == pytest.approx(expected[key.name], nan_ok=True)


def test_counts_from_inputs_reads_label_bytes_and_case():
    truth = np.array([[1, 0], [1, 1]], np.uint8)
    probabilities = np.array([[0.9, 0.8], [0.1, 0.7]], np.float32)
    counts = tfma_metrics.counts_from_inputs(inputs("P1", 7, truth, probabilities))
    assert counts == metrics.SliceCounts("P1", 7, truth_pixels=3, pred_pixels=3, intersection=2)
