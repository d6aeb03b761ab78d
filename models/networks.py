"""One entry point to the network builders."""

import keras

from models import unet, unetpp
from models.config import TrainingConfig


def build_model(config: TrainingConfig) -> keras.Model:
    """The training network: UNet, or UNet++ (a list of heads with deep supervision)."""
    if config.model == "unetpp":
        return unetpp.build_unetpp(config)
    return unet.build_unet(config)


def inference_model(model: keras.Model, config: TrainingConfig) -> keras.Model:
    """The network used for prediction: one logits output.

    UNet++ with deep supervision keeps its deepest head unless `prune_level`
    picks a shallower, faster one.
    """
    if config.model != "unetpp" or (not config.deep_supervision and config.prune_level is None):
        return model
    return unetpp.pruned(model, config.prune_level or config.depth)
