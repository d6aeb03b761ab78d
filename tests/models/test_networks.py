import keras
import numpy as np
import pytest
import tensorflow as tf

from models import networks, unetpp
from models.config import testing_config

CASES = [
    dict(model="unet", depth=1, n_filters=8, image_size=16),
    dict(model="unet", depth=3, n_filters=8, image_size=24, dropout_rate=0.0),
    dict(model="unetpp", depth=2, n_filters=8, image_size=20),
    dict(model="unetpp", depth=3, n_filters=8, image_size=24, deep_supervision=True),
    dict(model="unetpp", depth=3, n_filters=8, image_size=24, deep_supervision=True, prune_level=1),
]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_output_shapes_and_gradients(options):
    config = testing_config(**options)
    model = networks.build_model(config)
    # Any size divisible by 2**depth works, not only the training size: here an odd multiple.
    images = tf.random.uniform((2, 3 * 2**config.depth, config.image_size, 3), 0, 255)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        heads = outputs if isinstance(outputs, list) else [outputs]
        loss = tf.add_n([tf.reduce_mean(head) for head in heads])
    assert len(heads) == (config.depth if config.deep_supervision else 1)
    for head in heads:
        assert head.shape == (*images.shape[:3], 1) and head.dtype == tf.float32
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    inference = networks.inference_model(model, config)
    assert inference(images).shape == (*images.shape[:3], 1)


def test_unetpp_reuses_unet_blocks_and_prunes_to_fewer_parameters():
    config = testing_config(model="unetpp", depth=3, deep_supervision=True, image_size=32)
    model = networks.build_model(config)
    full = unetpp.pruned(model, 3)
    small = unetpp.pruned(model, 1)
    assert small.count_params() < full.count_params() <= model.count_params()
    names = {layer.name for layer in small.layers}
    assert "x2_0_conv1" not in names and "x0_1_conv1" in names
    # Pruned and full networks share weights: the same tensors, not copies.
    assert small.get_layer("x0_0_conv1").kernel is model.get_layer("x0_0_conv1").kernel


def test_standardization_makes_the_network_blind_to_scanner_gain():
    keras.utils.set_random_seed(0)
    model = networks.build_model(testing_config(dropout_rate=0.0))
    images = np.random.default_rng(0).uniform(20, 200, (1, 32, 32, 3)).astype("float32")
    darker, original = model(images * 0.6).numpy(), model(images).numpy()
    # The variance's +1 keeps the invariance approximate (about 1 / (2 variance), 3e-4 here),
    # so the bound is relative to the output's scale, which depends on the initial weights.
    assert np.max(np.abs(darker - original)) <= 1e-3 * np.max(np.abs(original))


def test_reference_parameter_counts_with_32_filters():
    """The papers' UNet (32->512) has about 7.76 M parameters and UNet++ about 9.04 M; ours are printed in docs/models.md."""
    unet = networks.build_model(testing_config(model="unet", n_filters=32, depth=4, image_size=64))
    unet_pp = networks.build_model(testing_config(model="unetpp", n_filters=32, depth=4, image_size=64))
    assert 7.0e6 < unet.count_params() < 8.5e6
    assert unet.count_params() < unet_pp.count_params() < 1.1e7
