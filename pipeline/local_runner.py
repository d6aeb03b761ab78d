"""Runs the pipeline on this machine with LocalDagRunner."""

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.run_lock import run_lock
from pipeline.run_summary import RunSummary, summarize_run


def run_local(config: PipelineConfig, variant: str = "local") -> RunSummary:
    """Run every component (reusing cached results) and summarize what the run did.

    variant: "local" (Resolver for the served model), or "kfp" to run the
    open-source-KFP graph (LatestPushedModel instead of a Resolver) on this
    machine, which shows that both decide the same way.

    Raises RunLockedError when another run is using `config.output_dir`.
    """
    pipeline = create_pipeline(config, orchestrator=variant)
    pipeline.metadata_connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    with run_lock(config.output_dir):
        tfx.orchestration.LocalDagRunner().run(pipeline)
        return summarize_run(config.metadata_path, config.pipeline_name)
