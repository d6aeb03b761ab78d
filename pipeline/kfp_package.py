"""What TFX's KubeflowV2DagRunner output needs before each backend runs it.

TFX compiles one PipelineSpec for both targets; these functions make it one
that open-source KFP 2.x runs, and check it (kubeflow/pipelines, backend/src/):
- schema 2.1.0: the API server refuses any other version
  (`apiserver/template/v2_template.go`), and the 2.0 form's `constantValue`
  parameters are not read by the driver (`v2/driver/resolve.go` reads
  `runtimeValue.constant`). Vertex AI accepts 2.1.0 too (the kfp 2.x SDK
  compiles nothing else), so both targets get it.
- every container runs `pipeline.kfp_entrypoint` (see there why);
- the pipeline root is the spec's `defaultPipelineRoot`, which the open-source
  backend reads (TFX writes it only to the Vertex PipelineJob's runtimeConfig);
- caching is off where the open-source cache key (input artifact ids,
  parameters, image, command: `v2/cacheutils/cache.go`) cannot see the data:
  ingestion and the latest-pushed-model lookups;
- tolerations and node selectors for the Trainer go in the platform spec
  (`platforms.kubernetes.deploymentSpec.executors.<executor>`), the second
  YAML document that the kfp 2.5 client forwards with the run.
"""

import dataclasses
import warnings

from pipeline import kfp_entrypoint

SCHEMA_VERSION = "2.1.0"
REMOTE_SCHEMES = ("gs://", "s3://")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
EXAMPLE_GEN_TASK = "FileBasedExampleGen"
LATEST_PUSHED_PREFIX = "latest_pushed_"


class SharedVolumeWarning(Warning):
    """A local data or output folder on open-source KFP: it works only on a volume every pod mounts.

    Not a UserWarning, which the command line silences: this one must be seen.
    """


LOCAL_PATH_WARNING = "{what} {uri} is a local path: every pod must mount a shared volume at {uri} (see docs/kubeflow.md)"


def check_pipeline_root(uri: str, target: str) -> str:
    """`uri` if the backend's launcher and TensorFlow both accept it; a ValueError naming it otherwise.

    Open-source KFP parses the root as a bucket and knows gs://, s3://, minio://
    and mem:// only (`v2/objectstore/config.go`, ParseBucketPathToConfig; the
    launcher's `LocalPathForURI` has no local form either), while TFX executors
    read and write `artifact.uri` with TensorFlow, which cannot open minio://.
    So gs:// or s3:// (with the plug-ins of the Dockerfile); on Vertex, gs://.
    """
    allowed = ("gs://",) if target == "vertex" else REMOTE_SCHEMES
    if not uri.startswith(allowed):
        raise ValueError(f"pipeline root {uri!r} is not usable on {target}: use {' or '.join(allowed)} (TensorFlow writes artifacts there)")
    return uri


def check_data_uri(uri: str, target: str, what: str) -> str:
    """The data and output folders are read and written by TensorFlow alone, not by the launcher:
    gs://, s3:// (kfp) or an absolute path that every pod mounts (a SharedVolumeWarning says so;
    on Vertex, /gcs/BUCKET/... is Cloud Storage FUSE)."""
    remote = REMOTE_SCHEMES if target == "kfp" else ("gs://",)
    if uri.startswith(remote):
        return uri
    if uri.startswith("/"):
        warnings.warn(LOCAL_PATH_WARNING.format(what=what, uri=uri), SharedVolumeWarning, stacklevel=2)
        return uri
    allowed = ", ".join(remote)
    raise ValueError(f"{what} {uri!r} cannot be read by TensorFlow on {target}: use {allowed} or an absolute path mounted in every pod")


@dataclasses.dataclass(frozen=True)
class GpuScheduling:
    """Kubernetes scheduling of the Trainer's pod on open-source KFP.

    tolerations: "KEY[=VALUE][:EFFECT]", e.g. "nvidia.com/gpu:NoSchedule"
    (no value: operator Exists); node_selector: "KEY=VALUE" labels, e.g.
    "cloud.google.com/gke-accelerator=nvidia-tesla-t4".
    """

    tolerations: tuple[str, ...] = ()
    node_selector: tuple[str, ...] = ()

    def __post_init__(self):
        for text in self.tolerations:
            toleration(text)
        for text in self.node_selector:
            node_label(text)

    def executor_config(self) -> dict:
        """The KubernetesExecutorConfig (kfp-kubernetes proto) as JSON; empty when nothing is set."""
        config = {}
        if self.tolerations:
            config["tolerations"] = [toleration(text) for text in self.tolerations]
        if self.node_selector:
            config["nodeSelector"] = {"labels": dict(node_label(text) for text in self.node_selector)}
        return config


def toleration(text: str) -> dict:
    """ "KEY[=VALUE][:EFFECT]" -> a Kubernetes toleration (kfp-kubernetes `Toleration` JSON)."""
    key_value, _, effect = text.partition(":")
    key, equals, value = key_value.partition("=")
    if not key or (equals and not value) or (effect and effect not in TOLERATION_EFFECTS):
        raise ValueError(f"toleration {text!r} is not KEY[=VALUE][:EFFECT] with EFFECT one of {', '.join(TOLERATION_EFFECTS)}")
    result = {"key": key, "operator": "Equal" if value else "Exists"}
    if value:
        result["value"] = value
    if effect:
        result["effect"] = effect
    return result


def node_label(text: str) -> tuple[str, str]:
    """ "KEY=VALUE" -> (key, value)."""
    key, equals, value = text.partition("=")
    if not (key and equals and value):
        raise ValueError(f"node selector {text!r} is not KEY=VALUE")
    return key, value


def executor_label(spec: dict, task: str) -> str:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]["executorLabel"]


def use_entrypoint(spec: dict) -> None:
    """Every container runs `pipeline.kfp_entrypoint` instead of TFX's runner, with the same arguments."""
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command and command[-1] == kfp_entrypoint.TFX_MODULE:
            command[-1] = kfp_entrypoint.MODULE


def uncached_on_kfp(spec: dict) -> list[str]:
    """Tasks whose inputs do not change when the data does: ingestion and the served-model lookups."""
    return sorted(name for name in spec["root"]["dag"]["tasks"] if name == EXAMPLE_GEN_TASK or name.startswith(LATEST_PUSHED_PREFIX))


def disable_cache(spec: dict, tasks: list[str]) -> None:
    for name in tasks:
        spec["root"]["dag"]["tasks"][name]["cachingOptions"] = {"enableCache": False}


def finish_spec(spec: dict, target: str, pipeline_root: str) -> None:
    """Rewrite TFX's PipelineSpec in place for `target` ('kfp' or 'vertex')."""
    use_entrypoint(spec)
    spec["defaultPipelineRoot"] = pipeline_root
    if target == "kfp":
        disable_cache(spec, uncached_on_kfp(spec))


def platform_spec(spec: dict, task: str, scheduling: GpuScheduling) -> dict | None:
    """The PlatformSpec document for `task`'s executor, or None when there is nothing to schedule."""
    config = scheduling.executor_config()
    if not config:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {executor_label(spec, task): config}}}}}
