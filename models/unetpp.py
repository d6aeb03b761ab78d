"""UNet++ (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture"), built from the UNet's blocks.

Node X(i, j) is at resolution level i (0 = full) and column j: X(i, 0) is the
UNet encoder, and X(i, j) = conv_block([X(i, 0..j-1), up(X(i+1, j-1))]).
Heads on X(0, 1..depth) give logits float32 [batch, height, width, 1]; with
deep supervision the training model outputs all of them. Pruning to level L
keeps head L and only the nodes it needs (i + j <= L), which Keras's
functional API does by itself when a model is cut at that head.
"""

import keras
from keras import layers

from models.config import TrainingConfig
from models.unet import conv_block, encoder, level_filters, logits_head, up_block


def build_unetpp(config: TrainingConfig) -> keras.Model:
    """UNet++; outputs the heads of levels 1..depth with deep supervision, else the last one."""
    inputs = keras.Input((None, None, config.input_channels), name="images")
    nodes = {(level, 0): x for level, x in enumerate(encoder(config, inputs))}
    for column in range(1, config.depth + 1):
        for level in range(config.depth + 1 - column):
            name = f"x{level}_{column}"
            skips = [nodes[(level, k)] for k in range(column)]
            upsampled = up_block(nodes[(level + 1, column - 1)], level_filters(config, level), name)
            x = layers.Concatenate(name=f"{name}_concat")([*skips, upsampled])
            nodes[(level, column)] = conv_block(x, level_filters(config, level), config.dropout_rate, name=name)
    heads = [logits_head(nodes[(0, column)], f"logits_l{column}") for column in range(1, config.depth + 1)]
    outputs = heads if config.deep_supervision else heads[-1]
    return keras.Model(inputs, outputs, name="unetpp")


def pruned(model: keras.Model, level: int) -> keras.Model:
    """The sub-network of a UNet++ that ends at head `level`, sharing its weights."""
    head = model.get_layer(f"logits_l{level}")
    return keras.Model(model.inputs, head.output, name=f"unetpp_l{level}")
