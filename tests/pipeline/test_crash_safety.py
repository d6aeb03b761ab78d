"""A run killed with SIGKILL is rerun to completion; two runs on one output folder do not mix."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline import run_summary
from pipeline.run_lock import LOCK_FILE
from tests.conftest import NO_QUALITY_GATES

pytestmark = pytest.mark.e2e

# Long enough to be killed mid-training: 40 epochs of 64x64 slices, no early stop.
SLOW_RUN_ARGS = [
    *"--epochs 40 --min-steps-per-epoch 1 --patience 40 --image-size 64 --depth 2 --n-filters 8 --batch-size 8 --no-report".split(),
    *NO_QUALITY_GATES,
]
REUSED = {"FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "PositivePixelWeight"}


def _argv(data_dir, output_dir) -> list[str]:
    return [sys.executable, "-m", "unet4mri.cli", "run", "--data-dir", data_dir, "--output-dir", str(output_dir), *SLOW_RUN_ARGS]


def _wait_for(condition, process, seconds=400):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the run ended early: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def _epochs_saved(output_dir) -> int:
    for path in glob.glob(os.path.join(str(output_dir), "tfx", "Trainer", "backup", "*", "progress.json")):
        try:
            with open(path) as source:
                return json.load(source)["epochs"]
        except (OSError, ValueError):
            return 0
    return 0


def test_a_run_killed_during_training_resumes_and_reuses_what_finished(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    killed = subprocess.Popen(
        _argv(tiny_dataset, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for(lambda: _epochs_saved(out) >= 3, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_after = _epochs_saved(out)
    assert not os.path.isdir(out / "serving_model") or os.listdir(out / "serving_model") == []

    rerun = subprocess.run(_argv(tiny_dataset, out), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    store = run_summary.open_store(str(out / "metadata.sqlite"))
    runs = {run.component: run for run in run_summary.latest_component_runs(store, "unet4mri")}
    assert {name: runs[name].state for name in REUSED} == dict.fromkeys(REUSED, "cached")
    assert runs["Trainer"].state == "complete" and runs["Pusher"].state == "complete"
    with open(os.path.join(runs["Trainer"].outputs["model_run"][0].uri, "history.json")) as source:
        history = json.load(source)
    assert history["resumed_from_epoch"] == killed_after >= 3
    assert len(history["history"]["loss"]) == 40  # the epochs before the kill and after it, once each
    assert glob.glob(str(out / "tfx" / "Trainer" / "backup" / "*")) == []  # removed once the model was exported
    (version,) = os.listdir(out / "serving_model")
    assert os.path.isfile(out / "serving_model" / version / "saved_model.pb")


def test_a_second_run_on_the_same_output_folder_fails_at_once_and_the_first_completes(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(_argv(tiny_dataset, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = out / LOCK_FILE
    _wait_for(lambda: lock.exists() and lock.read_text().startswith("pid "), first)
    second = subprocess.run(_argv(tiny_dataset, out), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert f"is in use by another run (pid {first.pid}, started" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert first.wait(timeout=900) == 0, first.stderr.read()[-3000:]
    store = run_summary.open_store(str(out / "metadata.sqlite"))
    runs = run_summary.latest_component_runs(store, "unet4mri")
    assert runs and all(run.state == "complete" for run in runs), [(run.component, run.state) for run in runs]
    assert len(os.listdir(out / "serving_model")) == 1
