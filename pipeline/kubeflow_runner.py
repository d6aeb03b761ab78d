"""Compiles the pipeline for Kubeflow Pipelines: open-source KFP (YAML) or Vertex AI Pipelines (PipelineJob JSON).

Both use TFX's KubeflowV2DagRunner on the same `create_pipeline`:
- `kfp`: the PipelineSpec as YAML (the kfp 2.5 client loads .yaml/.yml,
  .tar.gz and .zip packages, not .json); the Trainer requests `nvidia.com/gpu`;
  the served model comes from the LatestPushedModel component, since the KFP
  backend does not run Resolver nodes.
- `vertex`: the PipelineJob as JSON; GPU types are Vertex names such as
  NVIDIA_TESLA_T4; Resolvers are supported.
Compiling needs no network: the trainer code is named by module path
(`models.trainer_module.run_fn`) and lives in the image, so no module wheel is
built or uploaded. Both targets get schema 2.1.0, our container entrypoint and
a checked pipeline root (`pipeline.kfp_package`); a package that fails the
static checks of `pipeline.kfp_checks` is not written.
"""

import dataclasses
import json
import os

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner, pipeline_builder

from pipeline import kfp_checks, kfp_package
from pipeline.config import PipelineConfig
from pipeline.kfp_package import GpuScheduling
from pipeline.pipeline import Capabilities, create_pipeline

TARGETS = ("kfp", "vertex")
KFP_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_VERTEX_GPU = "NVIDIA_TESLA_T4"
TRAINER_ID = "Trainer"
# Open-source KFP: "resolver executors not implemented"; Vertex compiles only TFX's own strategies.
TARGET_CAPABILITIES = {
    "kfp": Capabilities(resolvers=False, custom_resolver_strategies=False),
    "vertex": Capabilities(custom_resolver_strategies=False),
}

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Images and the Trainer's resources on the cluster.

    image: the pipeline image (every component); trainer_image: the GPU image
    for the Trainer alone (default: `image`); gpus / gpu_type / cpu (cores) /
    memory (GiB): the Trainer's limits; scheduling: tolerations and node
    selectors for the Trainer's pod (open-source KFP only).
    """

    image: str
    trainer_image: str | None = None
    gpus: int = 0
    gpu_type: str | None = None
    cpu: float | None = None
    memory: float | None = None
    scheduling: GpuScheduling = GpuScheduling()

    def __post_init__(self):
        if not self.image:
            raise ValueError("an image is required (see the Dockerfile)")
        if self.gpus < 0 or (self.cpu is not None and self.cpu <= 0) or (self.memory is not None and self.memory <= 0):
            raise ValueError(f"gpus, cpu and memory must be positive, got gpus={self.gpus}, cpu={self.cpu}, memory={self.memory}")


def check_gpu_type(target: str, gpu_type: str | None) -> None:
    """kfp copies the type into a Kubernetes resource limit (driver.go), so it must be a resource name
    such as nvidia.com/gpu; Vertex takes its own names such as NVIDIA_TESLA_T4."""
    if gpu_type is not None and (target == "kfp") != ("/" in gpu_type):
        example = KFP_GPU_RESOURCE if target == "kfp" else DEFAULT_VERTEX_GPU
        raise ValueError(f"GPU type {gpu_type!r} is not a {target} accelerator name (e.g. {example})")


def trainer_resources(target: str, options: ClusterOptions) -> ResourceSpec | None:
    check_gpu_type(target, options.gpu_type)
    if not (options.gpus or options.cpu or options.memory):
        return None
    spec = ResourceSpec()
    if options.cpu:
        spec.cpu_limit = options.cpu
    if options.memory:
        spec.memory_limit = options.memory
    if options.gpus:
        spec.accelerator.type = options.gpu_type or (KFP_GPU_RESOURCE if target == "kfp" else DEFAULT_VERTEX_GPU)
        spec.accelerator.count = options.gpus
    return spec


def compile_pipeline(
    config: PipelineConfig, target: str, output_file: str, options: ClusterOptions, pipeline_root: str | None = None
) -> dict:
    """Write the compiled pipeline to `output_file`; returns the PipelineJob as a dict.

    pipeline_root: where the artifacts go (default: the config's, OUTPUT_DIR/tfx);
    gs:// or s3:// (gs:// on Vertex). The data and output dirs may also be
    absolute paths on kfp, mounted in every pod.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    expected = (".yaml", ".yml") if target == "kfp" else (".json",)
    if not output_file.endswith(expected):
        raise ValueError(f"a {target} package must end in {' or '.join(expected)}, got {output_file}")
    if target == "vertex" and options.scheduling.executor_config():
        raise ValueError("tolerations and node selectors apply to --target kfp only (Vertex schedules GPUs itself)")
    root = kfp_package.check_pipeline_root(pipeline_root or config.pipeline_root, target)
    for what, uri in (("data dir", config.data_dir), ("output dir", config.output_dir)):
        kfp_package.check_data_uri(uri, target, what)
    job = _tfx_job(config, target, options)
    job["runtimeConfig"]["gcsOutputDirectory"] = root
    spec = job["pipelineSpec"]
    kfp_package.finish_spec(spec, target, root)
    problems = kfp_checks.spec_problems(spec, target)
    if problems:
        raise ValueError(f"the compiled {target} package is not fit to run: {problems[0]}")
    _write(job, target, output_file, kfp_package.platform_spec(spec, TRAINER_ID, options.scheduling))
    return job


def _tfx_job(config: PipelineConfig, target: str, options: ClusterOptions) -> dict:
    """TFX's PipelineJob (schema 2.1.0) for `create_pipeline`, as a dict; nothing is written."""
    images = {pipeline_builder.DEFAULT_IMAGE_PATH_KEY: options.image, TRAINER_ID: options.trainer_image or options.image}
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=config.pipeline_name, default_image=images, use_pipeline_spec_2_1=True
        ),
    )
    capabilities = dataclasses.replace(TARGET_CAPABILITIES[target], trainer_resources=trainer_resources(target, options))
    return runner.run(create_pipeline(config, capabilities), write_out=False)


def _write(job: dict, target: str, output_file: str, platform: dict | None) -> None:
    """kfp: the PipelineSpec YAML, then the PlatformSpec document if any; vertex: the PipelineJob JSON."""
    import yaml

    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    with open(output_file, "w") as out:
        if target == "kfp":
            yaml.safe_dump_all([job["pipelineSpec"]] + ([platform] if platform else []), out, sort_keys=True)
        else:
            json.dump(job, out, sort_keys=True, indent=1)


def load_job(path: str) -> dict:
    """The compiled package as a dict (YAML PipelineSpec or JSON PipelineJob)."""
    return load_documents(path)[0]


def load_documents(path: str) -> list[dict]:
    """Every document of the package: a kfp YAML holds the PipelineSpec and, with scheduling options, a PlatformSpec."""
    with open(path) as source:
        if path.endswith(".json"):
            return [json.load(source)]
        import yaml

        return list(yaml.safe_load_all(source))
