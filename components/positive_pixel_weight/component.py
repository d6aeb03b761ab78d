"""The component's wiring."""

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from components.positive_pixel_weight import executor, spec


class PositivePixelWeight(base_beam_component.BaseBeamComponent):
    """Counts tumor and background pixels of one split and emits
    `positive_pixel_weight = negative pixels / positive pixels` as the
    Trainer's `hyperparameters` (a JSON file that reaches `fn_args.hyperparameters`).
    """

    SPEC_CLASS = spec.PositivePixelWeightSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, split: str = "train"):
        super().__init__(
            spec=spec.PositivePixelWeightSpec(
                examples=examples,
                split=split,
                hyperparameters=types.Channel(type=standard_artifacts.HyperParameters),
            )
        )
