"""End-to-end: the whole pipeline with LocalDagRunner on tiny generated data."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from components.anomalies_gate import DataValidationError
from components.slice_example_gen.executor import IngestionError
from core import slices, synthetic_data
from data_schema import features
from pipeline import run_summary
from pipeline.config import SPLITS, testing_pipeline_config
from pipeline.local_runner import run_local
from tests.conftest import TINY_PATIENTS, TINY_RUN_ARGS
from unet4mri import evaluate, served_model

pytestmark = pytest.mark.e2e

COMPONENTS = {
    "FileBasedExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "PositivePixelWeight",
    "Trainer",
    "latest_blessed_baseline",
    "Evaluator",
    "Pusher",
}


@pytest.fixture(scope="module")
def first_run(tiny_run):
    return tiny_run


def executions_per_component(config) -> dict[str, int]:
    store = run_summary.open_store(config.metadata_path)
    return {
        context.name.split(".", 1)[1]: len(store.get_executions_by_context(context.id)) for context in store.get_contexts_by_type("node")
    }


def test_every_component_executed_once_and_the_model_was_pushed(first_run):
    config, summary = first_run
    assert {run.component for run in summary.components} == COMPONENTS
    assert all(run.state == "complete" for run in summary.components), summary.components
    assert executions_per_component(config) == dict.fromkeys(COMPONENTS, 1)
    assert summary.blessed is True
    assert summary.pushed_to and os.path.dirname(summary.pushed_to) == config.serving_dir
    assert summary.positive_pixel_weight > 1
    assert summary.rejected_files == 0 and summary.rejected_list.endswith("rejected.csv")
    assert set(summary.metrics_by_slice) >= {"overall", "none"}
    assert set(summary.patients_by_split) == set(SPLITS) and sum(summary.patients_by_split.values()) == TINY_PATIENTS


def test_pushed_model_loads_in_a_fresh_process_and_predicts(first_run, tiny_dataset, tmp_path):
    _, summary = first_run
    pair = slices.find_slice_pairs(tiny_dataset)[0]
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf, tifffile
        model = tf.saved_model.load({summary.pushed_to!r})
        image = tifffile.imread({pair.image_path!r})
        out = model.signatures["predict_images"](images=tf.constant(image[None]))
        print(out["mask"].shape, sorted(set(np.unique(out["mask"].numpy()).tolist()) | {{0, 1}}))
    """)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(1, 256, 256) [0, 1]"


def test_tfma_and_unet4mri_evaluate_agree_on_the_test_patients(first_run, tiny_dataset, tmp_path):
    config, summary = first_run
    store = run_summary.open_store(config.metadata_path)
    runs = run_summary.latest_component_runs(store, config.pipeline_name)
    examples_uri = next(r for r in runs if r.component == "FileBasedExampleGen").outputs["examples"][0].uri
    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-test", "*"))
    test_cases = {
        tf.train.Example.FromString(record.numpy()).features.feature[features.CASE_ID].bytes_list.value[0].decode()
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP")
    }
    for case in test_cases:
        shutil.copytree(os.path.join(tiny_dataset, case), tmp_path / case)  # copies: links out of the data folder are refused
    result = evaluate.evaluate_model(config.serving_dir, str(tmp_path))
    tfma_overall = summary.metrics_by_slice["overall"]
    for key, value in tfma_overall.items():
        assert result[key] == pytest.approx(value, abs=1e-6, nan_ok=True) or (result[key] is None and value != value), key


def test_second_run_reuses_the_cache_and_pushes_nothing_new(first_run):
    config, first = first_run
    summary = run_local(config)
    states = {run.component: run.state for run in summary.components}
    # The Resolver always runs; it now finds the first model as the served one, so the
    # Evaluator compares the (cached) candidate with itself and the Pusher recognizes it.
    rerun = {"latest_blessed_baseline", "Evaluator", "Pusher"}
    assert {name: state for name, state in states.items() if name not in rerun} == dict.fromkeys(COMPONENTS - rerun, "cached")
    assert executions_per_component(config) == dict.fromkeys(COMPONENTS, 2)
    assert summary.blessed and summary.pushed_to == first.pushed_to
    assert os.listdir(config.serving_dir) == [os.path.basename(first.pushed_to)]


def test_corrupt_slice_stops_the_run_with_the_file_name(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    bad = slices.find_slice_pairs(str(data))[5].mask_path
    with open(bad, "wb") as handle:
        handle.write(b"II*\0garbage")
    with pytest.raises(IngestionError, match=os.path.basename(bad)):
        run_local(testing_pipeline_config(str(data), str(tmp_path / "out")))


def test_slices_of_another_size_are_an_anomaly_that_stops_training(tmp_path):
    synthetic_data.generate_dataset(str(tmp_path / "data"), 6, 3, seed=0, image_size=128)
    config = testing_pipeline_config(str(tmp_path / "data"), str(tmp_path / "out"))
    with pytest.raises(DataValidationError, match="feature 'height'"):
        run_local(config)
    ran = {run.component for run in run_summary.latest_component_runs(run_summary.open_store(config.metadata_path), config.pipeline_name)}
    assert "Trainer" not in ran


def test_unetpp_with_deep_supervision_and_focal_tversky_runs_end_to_end(tiny_dataset, tmp_path):
    from unet4mri import cli

    options = "--model unetpp --deep-supervision --prune-level 2 --loss focal_tversky".split()
    argv = ["run", "--data-dir", tiny_dataset, "--output-dir", str(tmp_path), *options, *TINY_RUN_ARGS]
    assert cli.main(argv) == 0
    pushed = served_model.resolve_model_dir(os.path.join(str(tmp_path), "serving_model"))
    model = tf.saved_model.load(pushed)
    assert model.signatures["predict_images"](images=tf.zeros([1, 64, 48, 3], tf.uint8))["mask"].shape == (1, 64, 48)


def test_patch_training_runs_end_to_end_and_evaluates_with_tta(tiny_dataset, tmp_path):
    from unet4mri import cli

    options = "--image-size 64 --patch-size 32 --tumor-patch-fraction 0.5".split()
    argv = ["run", "--data-dir", tiny_dataset, "--output-dir", str(tmp_path), *TINY_RUN_ARGS, *options, "--no-report"]
    assert cli.main(argv) == 0
    history = tf.io.gfile.glob(os.path.join(str(tmp_path), "tfx", "Trainer", "model_run", "*", "history.json"))
    assert '"patch_size": 32' in open(history[0]).read()
    out = str(tmp_path / "tta.json")
    assert (
        cli.main(
            ["evaluate", "--model", os.path.join(str(tmp_path), "serving_model"), "--data-dir", tiny_dataset, "--output", out, "--tta"]
        )
        == 0
    )
    assert os.path.isfile(out)


def test_context_slices_train_export_and_evaluate_end_to_end(tiny_dataset, tmp_path):
    from unet4mri import cli

    argv = ["run", "--data-dir", tiny_dataset, "--output-dir", str(tmp_path), *TINY_RUN_ARGS, "--context-slices", "1", "--no-report"]
    assert cli.main(argv) == 0
    pushed = served_model.resolve_model_dir(os.path.join(str(tmp_path), "serving_model"))
    predict = tf.saved_model.load(pushed).signatures["predict_images"]
    assert predict(images=tf.zeros([1, 40, 40, 9], tf.uint8))["mask"].shape == (1, 40, 40)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected shape \[\?,\?,\?,9\]"):
        predict(images=tf.zeros([1, 40, 40, 3], tf.uint8))
    result = evaluate.evaluate_model(pushed, tiny_dataset)  # reads K from the model and stacks the neighbours
    assert result["slices"] and len(result["slices"]) == len(slices.find_slice_pairs(tiny_dataset))
