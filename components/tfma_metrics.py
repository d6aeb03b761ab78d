"""TFMA metric: the segmentation metrics of `core.metrics`, per slice of the evaluation.

TFMA 0.47 accepts only tf_keras or `tfma.metrics.Metric` classes, so the
metrics are one `Metric` whose Beam combiner gathers per-slice pixel counts
(label: the `mask` feature's raw bytes; prediction: the model's `mask`
output at native size, post-processed by the model as `core.postprocessing`
defines, so the Evaluator scores the masks users get) and hands them to
`core.metrics.summarize`. The outputs are the keys of `core.metrics.METRIC_KEYS`.
"""

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from core import metrics
from core.contracts import MASK_OUTPUT
from data_schema import features

METRIC_NAME = "segmentation"


def _first(value):
    """The single value of a feature or label as TFMA hands it (array, list or scalar)."""
    while isinstance(value, (np.ndarray, list, tuple)):
        if len(value) != 1:
            return value
        value = value[0]
    return value


def _for_model(value, model_name: str):
    """With a baseline, TFMA keys labels and predictions by model name ('candidate', 'baseline')."""
    if isinstance(value, dict) and model_name in value:
        return value[model_name]
    return value


def counts_from_inputs(inputs: metric_types.StandardMetricInputs, model_name: str = "") -> metrics.SliceCounts:
    prediction = _for_model(inputs.prediction, model_name)
    if isinstance(prediction, dict):  # all signature outputs: take the post-processed mask
        prediction = prediction[MASK_OUTPUT]
    prediction = np.asarray(prediction)
    prediction = prediction.reshape(prediction.shape[-2:])
    if not np.isin(prediction, (0, 1)).all():  # probabilities: the eval config names the wrong output
        raise ValueError(f"expected the model's 0/1 `{MASK_OUTPUT}` output, got values in [{prediction.min()}, {prediction.max()}]")
    prediction = prediction.astype(np.uint8)  # TFMA may hand it as floats; an integer mask is not thresholded again
    label = _first(_for_model(inputs.label, model_name))
    truth = np.frombuffer(label, dtype=np.uint8).reshape(prediction.shape)
    case_id = _first(inputs.features[features.CASE_ID])
    slice_index = _first(inputs.features[features.SLICE_INDEX])
    case_id = case_id.decode() if isinstance(case_id, bytes) else str(case_id)
    return metrics.slice_counts(truth, prediction, case_id, int(slice_index))


class _SegmentationCombiner(beam.CombineFn):
    def __init__(self, keys: dict[str, metric_types.MetricKey], model_name: str):
        self._keys = keys
        self._model_name = model_name

    def create_accumulator(self) -> list:
        return []

    def add_input(self, accumulator: list, element: metric_types.StandardMetricInputs) -> list:
        accumulator.append(counts_from_inputs(element, self._model_name))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        merged = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        return merged

    def extract_output(self, accumulator: list) -> dict:
        values = metrics.summarize(accumulator)
        return {key: values[name] for name, key in self._keys.items()}


def _segmentation_computations(
    name: str = METRIC_NAME,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    sub_keys=None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {
                # Unweighted by definition; example_weighted stays unset so that the
                # keys match those TFMA builds for thresholds.
                key: metric_types.MetricKey(name=key, model_name=model_name, output_name=output_name, example_weighted=None)
                for key in metrics.METRIC_KEYS
            }
            computations.append(
                metric_types.MetricComputation(
                    keys=list(keys.values()),
                    preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[features.CASE_ID, features.SLICE_INDEX])],
                    combiner=_SegmentationCombiner(keys, model_name),
                )
            )
    return computations


class SegmentationMetrics(metric_types.Metric):
    """Dice/IoU per tumor slice, pooled Dice, per-patient 3D Dice, detection and empty-slice FP rates."""

    def __init__(self, name: str = METRIC_NAME):
        super().__init__(_segmentation_computations, name=name)

    @property
    def compute_confidence_interval(self) -> bool:
        return False


metric_types.register_metric(SegmentationMetrics)
