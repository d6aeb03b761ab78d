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
built or uploaded.
"""

import dataclasses
import json
import os

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner, pipeline_builder

from pipeline.config import PipelineConfig
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
    memory (GiB): the Trainer's limits.
    """

    image: str
    trainer_image: str | None = None
    gpus: int = 0
    gpu_type: str | None = None
    cpu: float | None = None
    memory: float | None = None

    def __post_init__(self):
        if not self.image:
            raise ValueError("an image is required (see the Dockerfile)")
        if self.gpus < 0 or (self.cpu is not None and self.cpu <= 0) or (self.memory is not None and self.memory <= 0):
            raise ValueError(f"gpus, cpu and memory must be positive, got gpus={self.gpus}, cpu={self.cpu}, memory={self.memory}")


def trainer_resources(target: str, options: ClusterOptions) -> ResourceSpec | None:
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


def compile_pipeline(config: PipelineConfig, target: str, output_file: str, options: ClusterOptions) -> dict:
    """Write the compiled pipeline to `output_file`; returns the PipelineJob as a dict."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    expected = (".yaml", ".yml") if target == "kfp" else (".json",)
    if not output_file.endswith(expected):
        raise ValueError(f"a {target} package must end in {' or '.join(expected)}, got {output_file}")
    images = {pipeline_builder.DEFAULT_IMAGE_PATH_KEY: options.image, TRAINER_ID: options.trainer_image or options.image}
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(display_name=config.pipeline_name, default_image=images),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    capabilities = dataclasses.replace(TARGET_CAPABILITIES[target], trainer_resources=trainer_resources(target, options))
    return runner.run(create_pipeline(config, capabilities))


def load_job(path: str) -> dict:
    """The compiled package as a dict (YAML PipelineSpec or JSON PipelineJob)."""
    with open(path) as source:
        if path.endswith(".json"):
            return json.load(source)
        import yaml

        return yaml.safe_load(source)
