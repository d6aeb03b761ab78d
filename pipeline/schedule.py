"""Scheduled retraining on Kubeflow Pipelines (open-source) or Vertex AI Pipelines.

Each scheduled run ingests the latest span, trains, compares the candidate
with the served model and pushes only a blessed one (see pipeline.pipeline).
The functions here build the requests; `submit_*` send them (network).

What a recurring run re-executes on open-source KFP (`rerun_plan`): the cache
key there is input artifact ids, parameters, image and command, never the
data, so ingestion and the served-model lookups run uncached, and everything
downstream of them sees new artifact ids and runs again; only the tasks that
depend on neither (the schema import) come from the cache.
"""

import dataclasses
import urllib.error
import urllib.request

HEALTHZ_PATH = "/apis/v2beta1/healthz"


class KfpHostError(ConnectionError):
    """The KFP API host cannot be reached, or refuses the request."""


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


def rerun_plan(spec: dict) -> dict[str, list[str]]:
    """The tasks of a compiled kfp PipelineSpec that every recurring run re-executes, and those the cache may serve.

    "every run": caching off, or downstream of a task with caching off (its
    output is a new artifact, so the cache key changes); "cached while
    unchanged": the rest, reused until their parameters or image change.
    """
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    rerun = {name for name, task in tasks.items() if not task.get("cachingOptions", {}).get("enableCache")}
    changed = True
    while changed:
        grown = {name for name in tasks if upstream[name] & rerun} | rerun
        changed, rerun = grown != rerun, grown
    return {"every run": sorted(rerun), "cached while unchanged": sorted(set(tasks) - rerun)}


def check_kfp_host(host: str, timeout_s: float = 10.0) -> None:
    """One request to the API's health endpoint, so that a wrong host fails at once with one line naming it
    (the kfp client retries for 25 s and then raises a urllib3 traceback)."""
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"KFP host {host!r} must start with http:// or https://")
    try:
        with urllib.request.urlopen(host.rstrip("/") + HEALTHZ_PATH, timeout=timeout_s):
            return
    except urllib.error.HTTPError as error:
        raise KfpHostError(f"KFP host {host} refused the request: HTTP {error.code} {error.reason} on {HEALTHZ_PATH}") from None
    except (urllib.error.URLError, OSError) as error:
        raise KfpHostError(f"KFP host {host} cannot be reached: {getattr(error, 'reason', error)}") from None


def submit_kfp(schedule: KfpSchedule, host: str) -> str:
    import kfp
    import kfp_server_api
    import urllib3

    check_kfp_host(host)
    try:
        client = kfp.Client(host=host)
        experiment = client.create_experiment(schedule.experiment)
        job = client.create_recurring_run(**schedule.recurring_run_arguments(experiment.experiment_id))
    except (kfp_server_api.ApiException, urllib3.exceptions.HTTPError, TimeoutError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise KfpHostError(f"KFP host {host} refused the recurring run: {reason}") from None
    return getattr(job, "recurring_run_id", None) or getattr(job, "id", "")


def submit_vertex(schedule: VertexSchedule) -> str:
    from google.cloud import aiplatform

    aiplatform.init(project=schedule.project, location=schedule.region)
    job = aiplatform.PipelineJob(display_name=schedule.display_name, template_path=schedule.package, enable_caching=True)
    return job.create_schedule(**schedule.schedule_arguments()).resource_name
