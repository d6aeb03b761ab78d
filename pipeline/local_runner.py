"""Runs the pipeline on this machine with LocalDagRunner."""

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


def run_local(config: PipelineConfig) -> None:
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
