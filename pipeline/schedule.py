"""Scheduled retraining on Kubeflow Pipelines (open-source) or Vertex AI Pipelines.

Each scheduled run ingests the latest span, trains, compares the candidate
with the served model and pushes only a blessed one (see pipeline.pipeline).
The functions here build the requests; `submit_*` send them (network).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class KfpSchedule:
    """Arguments of `kfp.Client.create_recurring_run` for one recurring run.

    cron: six fields, seconds first (KFP's format), e.g. "0 0 3 * * 0" = Sundays 03:00.
    """

    package: str
    cron: str
    job_name: str = "unet4mri-retraining"
    experiment: str = "unet4mri"

    def __post_init__(self):
        if len(self.cron.split()) != 6:
            raise ValueError(f"KFP cron needs 6 fields (seconds first), got {self.cron!r}")
        if not self.package.endswith((".yaml", ".yml")):
            raise ValueError(f"the KFP client loads .yaml/.yml packages, got {self.package}")

    def recurring_run_arguments(self, experiment_id: str) -> dict:
        return {
            "experiment_id": experiment_id,
            "job_name": self.job_name,
            "cron_expression": self.cron,
            "max_concurrency": 1,  # a run never overlaps the previous one
            "no_catchup": True,  # a paused schedule does not replay missed runs
            "pipeline_package_path": self.package,
            "enabled": True,
        }


@dataclasses.dataclass(frozen=True)
class VertexSchedule:
    """Arguments of `aiplatform.PipelineJob(...).create_schedule(...)`.

    cron: five fields (Vertex's format), e.g. "0 3 * * 0" = Sundays 03:00, optionally "TZ=Europe/Paris 0 3 * * 0".
    """

    package: str
    cron: str
    project: str
    region: str
    display_name: str = "unet4mri-retraining"

    def __post_init__(self):
        fields = [field for field in self.cron.split() if not field.startswith("TZ=")]
        if len(fields) != 5:
            raise ValueError(f"Vertex cron needs 5 fields, got {self.cron!r}")
        if not self.package.endswith(".json"):
            raise ValueError(f"Vertex schedules take the compiled PipelineJob .json, got {self.package}")

    def schedule_arguments(self) -> dict:
        return {"cron": self.cron, "display_name": self.display_name, "max_concurrent_run_count": 1, "max_run_count": None}


def submit_kfp(schedule: KfpSchedule, host: str) -> str:
    import kfp

    client = kfp.Client(host=host)
    experiment = client.create_experiment(schedule.experiment)
    job = client.create_recurring_run(**schedule.recurring_run_arguments(experiment.experiment_id))
    return getattr(job, "recurring_run_id", None) or getattr(job, "id", "")


def submit_vertex(schedule: VertexSchedule) -> str:
    from google.cloud import aiplatform

    aiplatform.init(project=schedule.project, location=schedule.region)
    job = aiplatform.PipelineJob(display_name=schedule.display_name, template_path=schedule.package, enable_caching=True)
    return job.create_schedule(**schedule.schedule_arguments()).resource_name
