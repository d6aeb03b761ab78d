import math

import numpy as np
import pytest
import tensorflow as tf

from models import losses
from models.config import LOSSES


def logits_for(probabilities):
    p = np.asarray(probabilities, dtype=np.float64)
    return tf.constant(np.log(p / (1 - p)).reshape(1, -1, 1, 1), tf.float32)


def truth(values):
    return tf.constant(np.asarray(values, np.float32).reshape(1, -1, 1, 1))


def test_bce_and_weighted_bce_hand_computed():
    y, x = truth([1, 0]), logits_for([0.8, 0.4])
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert float(losses.binary_cross_entropy(y, x)) == pytest.approx(expected, rel=1e-5)
    weighted = -(3 * math.log(0.8) + math.log(0.6)) / 2
    assert float(losses.binary_cross_entropy(y, x, pos_weight=3.0)) == pytest.approx(weighted, rel=1e-5)


def test_region_losses_hand_computed():
    y, x = truth([1, 1, 0, 0]), logits_for([0.9, 0.5, 0.2, 0.1])
    tp, fn, fp = 1.4, 0.6, 0.3
    dice = (tp + 1) / (tp + 0.5 * fn + 0.5 * fp + 1)
    jaccard = (tp + 1) / (tp + fn + fp + 1)
    tversky = (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)
    assert float(losses.soft_dice_loss(y, x)) == pytest.approx(1 - dice, rel=1e-5)
    assert float(losses.soft_jaccard_loss(y, x)) == pytest.approx(1 - jaccard, rel=1e-5)
    assert float(losses.tversky_loss(y, x)) == pytest.approx(1 - tversky, rel=1e-5)
    assert float(losses.focal_tversky_loss(y, x)) == pytest.approx((1 - tversky) ** 0.75, rel=1e-5)


def test_focal_loss_hand_computed():
    y, x = truth([1, 0]), logits_for([0.8, 0.4])
    expected = (0.25 * 0.2**2 * -math.log(0.8) + 0.75 * 0.4**2 * -math.log(0.6)) / 2
    assert float(losses.focal_loss(y, x)) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_down_weights_easy_pixels():
    y = truth([0, 0])
    easy, hard = logits_for([0.05, 0.05]), logits_for([0.6, 0.6])
    assert float(losses.focal_loss(y, hard)) / float(losses.focal_loss(y, easy)) > float(losses.binary_cross_entropy(y, hard)) / float(
        losses.binary_cross_entropy(y, easy)
    )


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_is_finite_on_empty_batches_and_extreme_logits(name):
    loss = losses.make_loss(name, positive_pixel_weight=50.0)
    y = tf.zeros((2, 8, 8, 1))
    for logits in (tf.fill((2, 8, 8, 1), -1e4), tf.fill((2, 8, 8, 1), 1e4), tf.zeros((2, 8, 8, 1))):
        assert np.isfinite(float(loss(y, logits)))


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_has_finite_gradients_under_mixed_precision_inputs(name):
    loss = losses.make_loss(name, positive_pixel_weight=50.0)
    y = tf.cast(tf.random.uniform((2, 8, 8, 1)) > 0.9, tf.float16)
    logits = tf.Variable(tf.random.normal((2, 8, 8, 1), dtype=tf.float16))
    with tf.GradientTape() as tape:
        value = loss(y, logits)
    assert value.dtype == tf.float32
    assert np.all(np.isfinite(tape.gradient(value, logits).numpy()))


def test_blank_prediction_is_not_an_optimum_of_region_losses():
    y = truth([1, 0, 0, 0])
    blank, right = logits_for([0.01, 0.01, 0.01, 0.01]), logits_for([0.99, 0.01, 0.01, 0.01])
    for name in ("dice", "jaccard", "tversky", "focal_tversky", "bce_dice", "weighted_bce_dice"):
        loss = losses.make_loss(name, 10.0)
        assert float(loss(y, right)) < float(loss(y, blank)), name


def test_per_image_reduction_differs_from_batch_reduction():
    y = tf.constant(np.stack([np.ones((2, 2, 1)), np.zeros((2, 2, 1))]).astype(np.float32))
    x = tf.zeros((2, 2, 2, 1))
    batch = float(losses.soft_dice_loss(y, x, reduction="batch"))
    image = float(losses.soft_dice_loss(y, x, reduction="image"))
    assert batch == pytest.approx(1 - (2 + 1) / (2 + 0.5 * 2 + 0.5 * 2 + 1))
    # image 1: tp=2, fn=2, fp=0 -> 3/4; image 2: tp=0, fn=0, fp=2 -> 1/2
    assert image == pytest.approx(((1 - 3 / 4) + (1 - 1 / 2)) / 2)
    with pytest.raises(ValueError, match="reduction"):
        losses.soft_dice_loss(y, x, reduction="pixel")


def test_make_loss_rejects_unknown_names_and_bad_weights():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.make_loss("hinge")
    with pytest.raises(ValueError, match="positive_pixel_weight"):
        losses.make_loss("weighted_bce", 0.0)
    assert losses.make_loss("dice").__name__ == "dice"
    assert losses.binary_cross_entropy.__name__ == "binary_cross_entropy"
