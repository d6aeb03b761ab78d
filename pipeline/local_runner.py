"""Runs the pipeline on this machine with LocalDagRunner."""

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from unet4mri.run_summary import RunSummary, summarize_run


def run_local(config: PipelineConfig) -> RunSummary:
    """Run every component (reusing cached results) and summarize what the run did."""
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    return summarize_run(config.metadata_path, config.pipeline_name)
