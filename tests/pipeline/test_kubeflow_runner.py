"""Kubeflow compilation, offline: the compiled specs are checked, nothing is submitted."""

import kfp.components
import pytest

from pipeline import schedule
from pipeline.config import IngestionConfig, PipelineConfig
from pipeline.kubeflow_runner import ClusterOptions, compile_pipeline, load_job
from pipeline.local_runner import run_local
from pipeline.pipeline import Capabilities

DATA_TASKS = {"FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate", "PositivePixelWeight"}
CONFIG = PipelineConfig(
    data_dir="gs://bucket/lgg", output_dir="gs://bucket/unet4mri", ingestion=IngestionConfig(span_pattern="span-{SPAN}")
)
OPTIONS = ClusterOptions(image="registry/unet4mri:cpu", trainer_image="registry/unet4mri:gpu", gpus=2, cpu=8, memory=32)


@pytest.fixture(scope="module", params=["kfp", "vertex"])
def compiled(request, tmp_path_factory):
    target = request.param
    path = str(tmp_path_factory.mktemp(target) / ("pipeline.yaml" if target == "kfp" else "pipeline.json"))
    job = compile_pipeline(CONFIG, target, path, OPTIONS)
    spec = load_job(path) if target == "kfp" else load_job(path)["pipelineSpec"]
    return target, path, job, spec


def tasks(spec) -> dict:
    return spec["root"]["dag"]["tasks"]


def executor(spec, task: str) -> dict:
    """The container of a task: task -> component -> executor label -> deployment spec."""
    label = spec["components"][tasks(spec)[task]["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]["container"]


def test_expected_tasks_and_dependencies(compiled):
    target, _, _, spec = compiled
    names = set(tasks(spec))
    assert DATA_TASKS | {"Trainer", "Evaluator", "Pusher"} <= names
    baseline = (
        {"latest_pushed_baseline"}  # and no drift check: open-source KFP runs no Resolver
        if target == "kfp"
        else {"latest_blessed_baseline-model-resolver", "latest_blessed_baseline-model-blessing-resolver", "previous_statistics"}
    )
    assert names == DATA_TASKS | {"Trainer", "Evaluator", "Pusher"} | baseline
    assert set(tasks(spec)["Trainer"]["dependentTasks"]) == {"FileBasedExampleGen", "ImportSchemaGen", "PositivePixelWeight"}
    assert "Trainer" in tasks(spec)["Evaluator"]["dependentTasks"]
    assert set(tasks(spec)["Pusher"]["dependentTasks"]) == {"Trainer", "Evaluator"}
    assert "AnomaliesGate" in tasks(spec)["PositivePixelWeight"]["dependentTasks"]
    if target == "vertex":
        assert "previous_statistics" in tasks(spec)["StatisticsGen"]["dependentTasks"]


def test_no_resolver_node_on_open_source_kfp(compiled):
    target, path, _, spec = compiled
    text = open(path).read()
    if target == "kfp":
        assert "resolver" not in text.lower()
        assert "latest_pushed_baseline" in tasks(spec)["Evaluator"]["dependentTasks"]
    else:
        assert "resolver" in text.lower()


def test_trainer_alone_gets_the_gpu_image_and_request(compiled):
    target, _, _, spec = compiled
    containers = {name: executor(spec, name) for name in tasks(spec) if "resolver" not in name and name != "previous_statistics"}
    trainer = containers.pop("Trainer")
    assert trainer["image"] == "registry/unet4mri:gpu"
    gpu_type = "nvidia.com/gpu" if target == "kfp" else "NVIDIA_TESLA_T4"
    assert trainer["resources"]["accelerator"] == {"type": gpu_type, "count": "2"}
    assert (trainer["resources"]["cpuLimit"], trainer["resources"]["memoryLimit"]) == (8.0, 32.0)
    for name, container in containers.items():
        assert container["image"] == "registry/unet4mri:cpu", name
        assert "resources" not in container, name


def test_pipeline_root_spans_and_trainer_code_travel_in_the_package(compiled):
    _, path, job, _ = compiled
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/unet4mri/tfx"
    text = open(path).read()
    assert "span-{SPAN}/*/*.tif" in text
    assert "models.trainer_module.run_fn" in text
    assert "module_file" not in text or "null" in text  # no wheel to build or upload


def test_kfp_package_loads_with_the_kfp_sdk(compiled):
    target, path, _, _ = compiled
    if target == "kfp":
        component = kfp.components.load_component_from_file(path)
        assert component.name == "unet4mri"


def test_wrong_package_extensions_and_local_resources_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.yaml or \.yml"):
        compile_pipeline(CONFIG, "kfp", str(tmp_path / "p.json"), OPTIONS)
    with pytest.raises(ValueError, match="Kubeflow targets only"):
        run_local(CONFIG, Capabilities(trainer_resources=object()))
    with pytest.raises(ValueError, match="image"):
        ClusterOptions(image="")


def test_schedule_requests():
    kfp_schedule = schedule.KfpSchedule("p.yaml", "0 0 3 * * 0")
    arguments = kfp_schedule.recurring_run_arguments("experiment-1")
    assert arguments["cron_expression"] == "0 0 3 * * 0"
    assert (arguments["max_concurrency"], arguments["no_catchup"], arguments["pipeline_package_path"]) == (1, True, "p.yaml")
    with pytest.raises(ValueError, match="6 fields"):
        schedule.KfpSchedule("p.yaml", "0 3 * * 0")
    vertex = schedule.VertexSchedule("p.json", "TZ=Europe/Paris 0 3 * * 0", "project", "us-central1")
    assert vertex.schedule_arguments()["max_concurrent_run_count"] == 1
    with pytest.raises(ValueError, match=r"\.json"):
        schedule.VertexSchedule("p.yaml", "0 3 * * 0", "project", "us-central1")
