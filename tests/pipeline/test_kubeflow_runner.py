"""Kubeflow compilation, offline: the compiled specs are checked, nothing is submitted."""

import dataclasses

import kfp.components
import pytest
from kfp.client.client import _extract_pipeline_yaml

from pipeline import kfp_checks, schedule
from pipeline.config import IngestionConfig, PipelineConfig
from pipeline.kfp_package import GpuScheduling
from pipeline.kubeflow_runner import ClusterOptions, compile_pipeline, load_documents, load_job
from pipeline.local_runner import run_local
from pipeline.pipeline import Capabilities

DATA_TASKS = {"FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate", "PositivePixelWeight"}
CONFIG = PipelineConfig(
    data_dir="gs://bucket/lgg", output_dir="gs://bucket/unet4mri", ingestion=IngestionConfig(span_pattern="span-{SPAN}")
)
SCHEDULING = GpuScheduling(tolerations=("nvidia.com/gpu:NoSchedule",), node_selector=("cloud.google.com/gke-accelerator=nvidia-l4",))
OPTIONS = ClusterOptions(image="registry/unet4mri:cpu", trainer_image="registry/unet4mri:gpu", gpus=2, cpu=8, memory=32)


@pytest.fixture(scope="module", params=["kfp", "vertex"])
def compiled(request, tmp_path_factory):
    target = request.param
    path = str(tmp_path_factory.mktemp(target) / ("pipeline.yaml" if target == "kfp" else "pipeline.json"))
    options = dataclasses.replace(OPTIONS, scheduling=SCHEDULING) if target == "kfp" else OPTIONS
    job = compile_pipeline(CONFIG, target, path, options)
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
    _, path, job, spec = compiled
    assert spec["defaultPipelineRoot"] == "gs://bucket/unet4mri/tfx"  # where the open-source backend reads it
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/unet4mri/tfx"
    text = open(path).read()
    assert "span-{SPAN}/*/*" in text
    trainer = tasks(spec)["Trainer"]["inputs"]["parameters"]
    assert trainer["run_fn"] == {"runtimeValue": {"constant": "models.trainer_module.run_fn"}}
    assert "module_file" not in trainer and "module_path" not in trainer  # no wheel to build or upload


def test_kfp_package_loads_with_the_kfp_sdk(compiled):
    target, path, _, _ = compiled
    if target == "kfp":
        component = kfp.components.load_component_from_file(path)
        assert component.name == "unet4mri"


def test_compiled_packages_pass_the_static_checks(compiled):
    target, _, _, spec = compiled
    assert spec["schemaVersion"] == "2.1.0"
    assert kfp_checks.spec_problems(spec, target) == []
    uncached = sorted(
        name for name, task in tasks(spec).items() if not task.get("cachingOptions", {"enableCache": True}).get("enableCache")
    )
    assert uncached == (["FileBasedExampleGen", "latest_pushed_baseline"] if target == "kfp" else [])


def test_static_checks_catch_each_rule(compiled):
    target, _, _, spec = compiled
    broken = __import__("copy").deepcopy(spec)
    broken["schemaVersion"] = "2.0.0"
    tasks(broken)["Evaluator"]["inputs"]["parameters"]["eval_config"] = {"runtimeValue": {"constantValue": {"stringValue": "{}"}}}
    tasks(broken)["Pusher"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] = "Missing"
    executor(broken, "Trainer")["resources"]["accelerator"]["type"] = "NVIDIA_TESLA_T4" if target == "kfp" else "nvidia.com/gpu"
    executor(broken, "StatisticsGen")["command"][-1] = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
    problems = "\n".join(kfp_checks.spec_problems(broken, target))
    for expected in ("schemaVersion is '2.0.0'", "constantValue", "Missing.model", "accelerator type", "StatisticsGen_executor: command"):
        assert expected in problems


def test_trainer_alone_gets_tolerations_and_node_selector_in_the_platform_spec(compiled):
    target, path, _, spec = compiled
    if target != "kfp":
        return
    documents = load_documents(path)
    assert len(documents) == 2
    executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {
        "Trainer_executor": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}},
        }
    }
    forwarded = _extract_pipeline_yaml(path)  # what the kfp 2.5 client sends with a run
    assert list(forwarded.platform_spec.platforms["kubernetes"].deployment_spec.executors) == ["Trainer_executor"]


def test_gpu_scheduling_options_are_validated():
    assert GpuScheduling(("dedicated=gpu:NoExecute",)).executor_config()["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}
    ]
    with pytest.raises(ValueError, match="toleration 'gpu:Sometimes'"):
        GpuScheduling(tolerations=("gpu:Sometimes",))
    with pytest.raises(ValueError, match="node selector 'pool'"):
        GpuScheduling(node_selector=("pool",))


def test_pipeline_root_and_gpu_type_are_checked_for_the_target(tmp_path):
    kfp_path, vertex_path = str(tmp_path / "p.yaml"), str(tmp_path / "p.json")
    with pytest.raises(ValueError, match=r"pipeline root 'minio://mlpipeline/v2' is not usable on kfp: use gs:// or s3://"):
        compile_pipeline(CONFIG, "kfp", kfp_path, OPTIONS, pipeline_root="minio://mlpipeline/v2")
    with pytest.raises(ValueError, match=r"pipeline root 's3://bucket/root' is not usable on vertex"):
        compile_pipeline(CONFIG, "vertex", vertex_path, OPTIONS, pipeline_root="s3://bucket/root")
    with pytest.raises(ValueError, match=r"pipeline root '/mnt/shared/tfx' is not usable on kfp"):
        compile_pipeline(CONFIG, "kfp", kfp_path, OPTIONS, pipeline_root="/mnt/shared/tfx")
    with pytest.raises(ValueError, match=r"data dir 'data/lgg' cannot be read"):
        compile_pipeline(dataclasses.replace(CONFIG, data_dir="data/lgg"), "kfp", kfp_path, OPTIONS)
    with pytest.raises(ValueError, match=r"GPU type 'NVIDIA_TESLA_T4' is not a kfp accelerator name"):
        compile_pipeline(CONFIG, "kfp", kfp_path, dataclasses.replace(OPTIONS, gpu_type="NVIDIA_TESLA_T4"))
    with pytest.raises(ValueError, match="--target kfp only"):
        compile_pipeline(CONFIG, "vertex", vertex_path, dataclasses.replace(OPTIONS, scheduling=SCHEDULING))
    compile_pipeline(CONFIG, "kfp", kfp_path, OPTIONS, pipeline_root="s3://bucket/tfx")
    assert load_job(kfp_path)["defaultPipelineRoot"] == "s3://bucket/tfx"


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


def test_a_recurring_kfp_run_reexecutes_ingestion_and_everything_after_it(compiled):
    target, _, _, spec = compiled
    if target == "kfp":
        plan = schedule.rerun_plan(spec)
        assert plan["cached while unchanged"] == ["ImportSchemaGen"]
        assert {"FileBasedExampleGen", "latest_pushed_baseline", "Trainer", "Evaluator", "Pusher"} <= set(plan["every run"])


@pytest.fixture
def refusing_host():
    import http.server
    import threading

    class Forbidden(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_schedule_answers_an_unreachable_or_refusing_host_with_one_line(refusing_host, capsys):
    from unet4mri import cli

    with pytest.raises(schedule.KfpHostError, match=r"^KFP host http://127\.0\.0\.1:9 cannot be reached"):
        schedule.submit_kfp(schedule.KfpSchedule("p.yaml", "0 0 3 * * 0"), "http://127.0.0.1:9")
    with pytest.raises(schedule.KfpHostError, match=rf"^KFP host {refusing_host} refused the request: HTTP 403"):
        schedule.submit_kfp(schedule.KfpSchedule("p.yaml", "0 0 3 * * 0"), refusing_host)
    status = cli.main(["schedule", "--target", "kfp", "--package", "p.yaml", "--cron", "0 0 3 * * 0", "--host", "http://127.0.0.1:9"])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and "http://127.0.0.1:9" in error and "Traceback" not in error
