"""`deterministic` training: two trainings of one seed, each in a fresh process, end with bit-identical weights;
asked for too late, it is a clear error (the Kubeflow entrypoint's part: tests/pipeline/test_kfp_entrypoint.py)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from models import determinism
from models.config import testing_config
from pipeline.config import testing_pipeline_config
from pipeline.local_runner import run_local
from tests.helpers import write_examples

# Large enough that TensorFlow's multi-threaded sums differ between processes without the option (two such
# trainings without it: different weights, 2 of 2 tries on the 2-core development machine); the tiny
# test configuration's do not, so it could not show the option at work.
OVERRIDES = {"image_size": 64, "n_filters": 32, "depth": 3, "batch_size": 16, "epochs": 1, "min_steps_per_epoch": 2}

TRAIN_AND_HASH = """
import hashlib, json, sys
import numpy as np
from models.config import testing_config
from models.trainer_module import train
train_files, eval_files, work_dir, overrides = sys.argv[1:]
result = train(testing_config(deterministic=True, **json.loads(overrides)), [train_files], [eval_files], 20.0, work_dir)
print(hashlib.sha256(b"".join(np.asarray(weight).tobytes() for weight in result.model.weights)).hexdigest())
"""


def test_two_deterministic_trainings_give_identical_weights(tiny_dataset, tmp_path):
    cases = sorted(os.listdir(tiny_dataset))
    train_files = write_examples(tiny_dataset, str(tmp_path / "train"), cases[:4])
    eval_files = write_examples(tiny_dataset, str(tmp_path / "eval"), cases[4:])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digests = []
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        argv = [sys.executable, "-c", TRAIN_AND_HASH, train_files, eval_files, str(tmp_path / attempt), json.dumps(OVERRIDES)]
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        digests.append(done.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


def test_one_thread_asked_for_after_tensorflow_started_is_a_clear_error():
    tf.constant(1.0) + 1.0  # starts TensorFlow's runtime with its default thread pools
    with pytest.raises(RuntimeError, match="its thread pools are fixed when it runs its first operation"):
        determinism.use_one_thread()


def test_a_deterministic_local_run_sets_the_threads_before_any_component_runs(tmp_path):
    """The local runner asks for one thread first; in this process TensorFlow already ran, so it stops there, having written nothing."""
    tf.constant(1.0) + 1.0
    config = testing_pipeline_config(str(tmp_path / "data"), str(tmp_path / "output"), training=testing_config(deterministic=True))
    with pytest.raises(RuntimeError, match="its thread pools are fixed"):
        run_local(config)
    assert not (tmp_path / "output").exists()
