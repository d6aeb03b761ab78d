import keras
import numpy as np
import pytest

from models import networks
from models.config import testing_config
from models.trainer_module import compile_model
from models.training_model import IMAGES, MASKS, training_model


def test_without_augmentation_the_wrapper_trains_exactly_like_the_bare_network():
    config = testing_config(dropout_rate=0.0)
    keras.utils.set_random_seed(0)
    bare, wrapped = networks.build_model(config), networks.build_model(config)
    wrapped.set_weights(bare.get_weights())
    trainer = training_model(wrapped, augment=False, seed=0)
    compile_model(bare, config, 100.0)
    compile_model(trainer, config, 100.0, outputs=1)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    masks = (rng.uniform(size=(8, 32, 32, 1)) > 0.9).astype("float32")
    for _ in range(2):
        expected = bare.train_on_batch(images, masks, return_dict=True)
        got = trainer.train_on_batch({IMAGES: images, MASKS: masks}, return_dict=True)
        assert set(got) == set(expected) and all(np.isclose(got[key], expected[key], rtol=1e-5, equal_nan=True) for key in expected)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(bare.get_weights(), wrapped.get_weights()))
    evaluated = trainer.evaluate({IMAGES: images, MASKS: masks}, return_dict=True, verbose=0)
    assert np.isclose(evaluated["dice"], bare.evaluate(images, masks, return_dict=True, verbose=0)["dice"], rtol=1e-5)


@pytest.mark.parametrize("option, share", [("background_structures", 0.3), ("synthetic_lesions", 0.4), ("coil_shading", 0.3)])
def test_an_augmentation_share_reaches_the_augmentation(option, share):
    network = networks.build_model(testing_config())
    trainer = training_model(network, augment=True, seed=0, **{option: share})
    assert getattr(trainer.augmentation, option) == share
    assert trainer.augmentation.get_config()[option] == share
    assert getattr(training_model(network, augment=True, seed=0).augmentation, option) == 0.0
