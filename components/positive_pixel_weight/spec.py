"""The component's contract: artifact keys and parameters, defined once."""

from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

EXAMPLES_KEY = "examples"
HYPERPARAMETERS_KEY = "hyperparameters"
SPLIT_KEY = "split"


class PositivePixelWeightSpec(types.ComponentSpec):
    """examples (Examples) in -> hyperparameters (HyperParameters: one JSON file) out."""

    PARAMETERS = {SPLIT_KEY: ExecutionParameter(type=str)}
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {HYPERPARAMETERS_KEY: ChannelParameter(type=standard_artifacts.HyperParameters)}
