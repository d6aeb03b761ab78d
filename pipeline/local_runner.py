"""Runs the pipeline on this machine with LocalDagRunner."""

from tfx import v1 as tfx

from models import determinism
from pipeline.config import PipelineConfig
from pipeline.pipeline import LOCAL, Capabilities, create_pipeline
from pipeline.run_lock import run_lock
from pipeline.run_summary import RunSummary, summarize_run


def run_local(config: PipelineConfig, capabilities: Capabilities = LOCAL) -> RunSummary:
    """Run every component (reusing cached results) and summarize what the run did.

    capabilities: LOCAL (Resolvers for the served model and the drift check),
    or those of another orchestrator, e.g. `Capabilities(resolvers=False)` to
    run the open-source-KFP graph (LatestPushedModel instead of Resolvers) on
    this machine, which shows that both decide the same way.

    With `config.training.deterministic` TensorFlow gets one thread per pool
    here, before any component runs an operation (models.determinism): the
    Trainer runs in this process.

    Raises RunLockedError when another run is using `config.output_dir`.
    """
    if config.training.deterministic:
        determinism.use_one_thread()
    if capabilities.trainer_resources is not None:
        raise ValueError("trainer_resources apply to Kubeflow targets only (LocalDagRunner rejects platform configs)")
    pipeline = create_pipeline(config, capabilities)
    pipeline.metadata_connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    with run_lock(config.output_dir):
        tfx.orchestration.LocalDagRunner().run(pipeline)
        return summarize_run(config.metadata_path, config.pipeline_name)
