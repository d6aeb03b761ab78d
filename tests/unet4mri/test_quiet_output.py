import os
import re
import subprocess
import sys

import pytest

from tests.conftest import TINY_RUN_ARGS

NOISE = re.compile(
    r"warn|deprecat|ArtifactQuery|tf_record_iterator|oneDNN|cuda|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |^[IWEF]\d{4} ",
    re.IGNORECASE,
)


@pytest.mark.e2e
def test_a_default_run_prints_progress_and_no_warnings_from_the_stack(tiny_dataset, tmp_path):
    argv = [
        sys.executable,
        "-m",
        "unet4mri.cli",
        "run",
        "--data-dir",
        tiny_dataset,
        "--output-dir",
        str(tmp_path),
        *TINY_RUN_ARGS,
        "--no-report",
    ]
    env = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}
    process = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=os.getcwd())
    assert process.returncode == 0, process.stderr[-3000:]
    lines = (process.stdout + process.stderr).splitlines()
    noisy = [line for line in lines if NOISE.search(line)]
    assert noisy == [], noisy[:10]
    assert any(re.search(r"Trainer: finished in [\d.]+ s", line) for line in lines)
    assert any(line.startswith("Pushed to: ") for line in lines)
    assert any(line.startswith("Patients per split: train ") for line in lines)
    assert any(line.startswith("Only ") and (" in the eval split" in line or " in the test split" in line) for line in lines)  # 6 patients
