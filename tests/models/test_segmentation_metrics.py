import numpy as np
import pytest

from core import metrics
from models.segmentation_metrics import EmptySliceFalsePositiveRate, PooledDice, TumorSliceMetric, training_metrics


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


@pytest.mark.parametrize("seed", range(5))
def test_pooled_dice_and_empty_slice_fp_rate_match_the_reference_definitions(seed):
    """Random batches with empty truth slices, empty predictions and both, accumulated over three batches."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((9, 8, 8, 1)) > 0.7).astype(np.float32)
    logits = rng.normal(size=(9, 8, 8, 1)).astype(np.float32) - rng.random((9, 1, 1, 1)).astype(np.float32)
    truth[[0, 3, 4, 7]] = 0  # tumor-free slices ...
    logits[[1, 4, 8]] = -1.0  # ... empty predictions (slice 4: both empty, a true negative)
    counts = [metrics.slice_counts(t[..., 0], (x[..., 0] > 0).astype(np.uint8)) for t, x in zip(truth, logits)]
    reference = metrics.summarize(counts)
    assert 0 < reference["empty_slice_fp_rate"] < 1  # the case exercises both outcomes of an empty slice
    pooled, fp_rate = PooledDice(), EmptySliceFalsePositiveRate()
    for metric in (pooled, fp_rate):
        for batch in (slice(0, 4), slice(4, 5), slice(5, 9)):  # accumulates across batches of any size
            metric.update_state(truth[batch], logits[batch])
    assert float(pooled.result()) == pytest.approx(reference["dice_pooled"], abs=1e-6)
    assert float(fp_rate.result()) == pytest.approx(reference["empty_slice_fp_rate"], abs=1e-6)


def test_pooled_dice_counts_tumor_painted_on_healthy_slices():
    """By hand: one tumor slice predicted exactly (4 pixels), one healthy slice painted (16 pixels)."""
    truth = np.zeros((2, 4, 4, 1), np.float32)
    truth[0, :2, :2] = 1.0
    logits = np.where(truth > 0, 5.0, -5.0).astype(np.float32)
    logits[1] = 5.0
    pooled, fp_rate, tumor_dice = PooledDice(), EmptySliceFalsePositiveRate(), TumorSliceMetric("dice")
    for metric in (pooled, fp_rate, tumor_dice):
        metric.update_state(truth, logits)
    assert float(tumor_dice.result()) == pytest.approx(1.0)  # blind to the healthy slice
    assert float(pooled.result()) == pytest.approx(2 * 4 / (4 + 4 + 16))
    assert float(fp_rate.result()) == pytest.approx(1.0)


def test_pooled_dice_and_fp_rate_are_nan_with_nothing_to_measure_and_reset_clears():
    pooled, fp_rate = PooledDice(), EmptySliceFalsePositiveRate()
    pooled.update_state(np.zeros((2, 4, 4, 1)), np.full((2, 4, 4, 1), -1.0))  # nothing true, nothing predicted
    fp_rate.update_state(np.ones((2, 4, 4, 1)), np.ones((2, 4, 4, 1)))  # no empty-truth slice
    assert np.isnan(float(pooled.result())) and np.isnan(float(fp_rate.result()))
    fp_rate.update_state(np.zeros((1, 4, 4, 1)), np.full((1, 4, 4, 1), -1.0))
    assert float(fp_rate.result()) == 0.0
    for metric in (pooled, fp_rate):
        metric.reset_state()
        assert np.isnan(float(metric.result()))


def test_training_metrics_are_named_as_the_logs_expect():
    assert [metric.name for metric in training_metrics()] == ["dice", "iou", "dice_pooled", "empty_slice_fp_rate"]
