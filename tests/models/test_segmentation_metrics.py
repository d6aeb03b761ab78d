import numpy as np
import pytest

from core import metrics
from models.segmentation_metrics import TumorSliceMetric


@pytest.mark.parametrize("seed", range(5))
def test_keras_metrics_match_the_reference_definitions(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random((6, 8, 8, 1)) > 0.7).astype(np.float32)
    truth[0] = 0  # an empty slice must not count
    logits = rng.normal(size=(6, 8, 8, 1)).astype(np.float32)
    counts = [metrics.slice_counts(t[..., 0], (x[..., 0] > 0).astype(np.uint8)) for t, x in zip(truth, logits)]
    reference = metrics.summarize(counts)
    dice, iou = TumorSliceMetric("dice"), TumorSliceMetric("iou")
    for metric in (dice, iou):
        metric.update_state(truth[:3], logits[:3])
        metric.update_state(truth[3:], logits[3:])  # accumulates across batches
    assert float(dice.result()) == pytest.approx(reference["dice_per_tumor_slice_mean"], rel=1e-5)
    assert float(iou.result()) == pytest.approx(reference["iou_per_tumor_slice_mean"], rel=1e-5)


def test_no_tumor_slice_gives_nan_and_reset_clears():
    metric = TumorSliceMetric("dice")
    metric.update_state(np.zeros((2, 4, 4, 1)), np.ones((2, 4, 4, 1)))
    assert np.isnan(float(metric.result()))
    metric.update_state(np.ones((1, 4, 4, 1)), np.ones((1, 4, 4, 1)))
    assert float(metric.result()) == pytest.approx(1.0)
    metric.reset_state()
    assert np.isnan(float(metric.result()))
    with pytest.raises(ValueError, match="kind"):
        TumorSliceMetric("f1")


def test_a_logit_exactly_at_the_threshold_is_not_tumor():
    """Logit 0 is probability 0.5, and core.metrics counts a pixel as tumor only when p > 0.5."""
    truth = np.zeros((1, 2, 2, 1), np.float32)
    truth[0, 0, 0] = 1.0
    logits = np.zeros((1, 2, 2, 1), np.float32)  # every pixel at the threshold ...
    logits[0, 0, 0] = 0.1  # ... but the tumor pixel, just above it
    assert metrics.slice_counts(truth[0, ..., 0], np.full((2, 2), 0.5, np.float32)).pred_pixels == 0
    dice = TumorSliceMetric("dice")
    dice.update_state(truth, logits)
    assert float(dice.result()) == pytest.approx(1.0)  # 2*1 / (1 + 1); with 4 predicted pixels it would be 0.4
