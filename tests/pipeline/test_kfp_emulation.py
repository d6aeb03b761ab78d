"""The compiled packages, run node by node as each backend's launcher runs them (tests/pipeline/kfp_launcher_emulation.py).

Open-source KFP: a first run from ingestion to a pushed model, then a run on a
new span that ingests it and compares against the first run's pushed model
(one run proves both, which keeps the test near its time budget). Vertex AI:
one full run with typed inputs, resolvers and the ExampleGen driver hook. A
companion test runs TFX's own entrypoint under the same emulation and meets the
open-source failure. Not a cluster run: see docs/kubeflow.md.
"""

import os
import shutil

import pytest

from components.pusher_executor import tree_digest
from core import synthetic_data
from models.config import testing_config
from pipeline import kfp_checks, kfp_entrypoint, schedule
from pipeline.config import IngestionConfig, testing_pipeline_config
from pipeline.kfp_package import SharedVolumeWarning
from pipeline.kubeflow_runner import ClusterOptions, compile_pipeline, load_job
from tests.pipeline.kfp_launcher_emulation import Launcher

pytestmark = pytest.mark.e2e

PATIENTS, SLICES = 6, 10  # seeds 0 and 2 give every split at least one of the 6 patients, the test split tumor slices
REMOTE_ROOT = {"kfp": "s3://emulated/tfx", "vertex": "gs://emulated/tfx"}  # compiled in; the emulation maps it to a local folder


def compile_for(
    target: str, data_dir: str, output_dir: str, package_dir, span_pattern: str | None = "span-{SPAN}", deterministic: bool = False
) -> dict:
    # Any candidate is blessed (no floor, any regression tolerated): the rerun must end in a push to prove it;
    # refusing a worse candidate is tested by tests/pipeline/test_retraining.py.
    ingestion = IngestionConfig(span_pattern=span_pattern)
    training = testing_config(deterministic=deterministic)
    config = testing_pipeline_config(data_dir, output_dir, ingestion, training=training, max_dice_regression=1.0)
    path = str(package_dir / ("pipeline.yaml" if target == "kfp" else "pipeline.json"))
    with pytest.warns(SharedVolumeWarning, match="every pod must mount"):
        compile_pipeline(config, target, path, ClusterOptions(image="unet4mri:emulated"), pipeline_root=REMOTE_ROOT[target])
    spec = load_job(path) if target == "kfp" else load_job(path)["pipelineSpec"]
    assert kfp_checks.spec_problems(spec, target) == []
    return spec


def assert_loads_and_predicts(pushed_dir: str, data_dir: str) -> None:
    from unet4mri.evaluate import evaluate_model

    result = evaluate_model(pushed_dir, data_dir, 8)
    assert len(result["slices"]) == PATIENTS * SLICES
    assert 0.0 <= result["dice_pooled"] <= 1.0  # predictions were made and scored


def examples_span(run) -> float:
    """The span ExampleGen's driver recorded (a custom property, prefixed where `span` is also a declared property)."""
    metadata = run["FileBasedExampleGen"].outputs["examples"].metadata
    return metadata.get("custom:span", metadata.get("span"))


def pushed_dir(run) -> str:
    pushed = run["Pusher"].outputs["pushed_model"]
    assert pushed.metadata.get("pushed") == 1.0, pushed.metadata
    return pushed.metadata["pushed_destination"]


@pytest.fixture(scope="module")
def kfp_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("kfp")
    data, output = str(base / "data"), str(base / "output")
    synthetic_data.generate_dataset(os.path.join(data, "span-1"), PATIENTS, SLICES, seed=0)
    spec = compile_for("kfp", data, output, base)
    launcher = Launcher("kfp")
    first = launcher.run(spec, os.path.join(output, "tfx"), "run-1")
    served_after_first = sorted(os.listdir(os.path.join(output, "serving_model")))
    synthetic_data.generate_dataset(os.path.join(data, "span-2"), PATIENTS, SLICES, seed=2)
    second = launcher.run(spec, os.path.join(output, "tfx"), "run-2")
    return spec, data, output, first, second, served_after_first


def test_kfp_first_run_goes_from_ingestion_to_a_pushed_model_that_predicts(kfp_runs):
    spec, data, _, first, _, served = kfp_runs
    assert {name: run.state for name, run in first.items()} == {name: "complete" for name in spec["root"]["dag"]["tasks"]}
    assert examples_span(first) == 1.0
    assert len(served) == 1 and pushed_dir(first).endswith(served[0])
    assert_loads_and_predicts(pushed_dir(first), os.path.join(data, "span-1"))


def test_kfp_rerun_ingests_the_new_span_against_the_first_runs_pushed_model(kfp_runs):
    spec, data, _, first, second, _ = kfp_runs
    failed = {name: run.log_tail[-2000:] for name, run in second.items() if run.state == "failed"}
    assert not failed, failed
    assert examples_span(second) == 2.0
    baseline = second["latest_pushed_baseline"].outputs["model"].uri
    assert tree_digest(os.path.join(baseline, "Format-Serving")) == tree_digest(pushed_dir(first))
    blessing = second["Evaluator"].outputs["blessing"].metadata  # TFX records the baseline it compared against
    assert blessing["baseline_model_id"] == str(second["latest_pushed_baseline"].outputs["model"].id)
    plan = schedule.rerun_plan(spec)  # what the schedule documents is what the emulated cache did
    assert sorted(name for name, run in second.items() if run.state == "cached") == plan["cached while unchanged"]
    assert plan["cached while unchanged"] == ["ImportSchemaGen"]
    assert_loads_and_predicts(pushed_dir(second), os.path.join(data, "span-2"))


def test_vertex_runs_every_node_with_resolvers_and_the_driver_hook(tmp_path):
    data, output = str(tmp_path / "data"), str(tmp_path / "output")
    synthetic_data.generate_dataset(os.path.join(data, "span-1"), PATIENTS, SLICES, seed=0)
    # Deterministic training: the Trainer's container must get TensorFlow on one thread before its
    # first operation, or the training stops (models.determinism.TOO_LATE).
    spec = compile_for("vertex", data, output, tmp_path, deterministic=True)
    run = Launcher("vertex").run(spec, os.path.join(output, "tfx"), "run-1")
    failed = {name: item.log_tail[-2000:] for name, item in run.items() if item.state == "failed"}
    assert not failed, failed
    assert set(run) == set(spec["root"]["dag"]["tasks"])
    assert examples_span(run) == 1.0
    assert run["latest_blessed_baseline-model-resolver"].outputs == {}  # nothing blessed before the first run
    assert_loads_and_predicts(pushed_dir(run), os.path.join(data, "span-1"))


def test_tfx_own_entrypoint_fails_on_the_first_typed_input_as_on_open_source_kfp(tmp_path):
    """The emulation is faithful on the launcher's untyped inputs: TFX's runner fails where the issue says it does."""
    data, output = str(tmp_path / "data"), str(tmp_path / "output")
    synthetic_data.generate_dataset(data, PATIENTS, SLICES, seed=0)
    spec = compile_for("kfp", data, output, tmp_path, span_pattern=None)
    tfx_command = ["python", "-m", kfp_entrypoint.TFX_MODULE]
    run = Launcher("kfp").run(spec, os.path.join(output, "tfx"), "run-1", command_override=tfx_command)
    assert [(name, item.state) for name, item in run.items()] == [
        ("FileBasedExampleGen", "complete"),
        ("ImportSchemaGen", "complete"),
        ("StatisticsGen", "failed"),
    ]
    assert "_retrieve_class_path" in run["StatisticsGen"].log_tail
    assert "AttributeError: 'NoneType' object has no attribute 'get'" in run["StatisticsGen"].log_tail
    shutil.rmtree(output)
