"""Shared fixtures. The environment is set before anything imports TensorFlow."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "0"  # the project's Keras is Keras 3 (see unet4mri/quiet.py)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402

from core import synthetic_data  # noqa: E402

# Seed 0 puts 4 / 1 / 1 of these 6 patients in train / eval / test (hash of the case id).
TINY_PATIENTS = 6
TINY_SLICES = 10
# `unet4mri run` options that switch off every quality gate of the blessing (a tiny model passes none).
NO_QUALITY_GATES = "--min-tumor-slice-dice 0 --min-patient-dice 0 --max-empty-slice-fp-rate off --max-fp-rate-regression off".split()
# `unet4mri run` options of a seconds-long training: one epoch of a tiny network, no quality gate.
TINY_RUN_ARGS = [
    *("--epochs 1 --min-steps-per-epoch 1 --image-size 32 --depth 2 --n-filters 8 --batch-size 8".split()),
    *NO_QUALITY_GATES,
]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """6 synthetic patients x 10 slices of 256x256 in the kaggle_3m layout (read-only: copy to change)."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    synthetic_data.generate_dataset(str(root), TINY_PATIENTS, TINY_SLICES, seed=0)
    return str(root)


def write_pair(folder, case_id: str, index: int, image: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """Write one slice and mask TIFF in the kaggle_3m layout; returns their paths."""
    case_folder = os.path.join(str(folder), case_id)
    os.makedirs(case_folder, exist_ok=True)
    image_path = os.path.join(case_folder, f"{case_id}_{index}.tif")
    mask_path = os.path.join(case_folder, f"{case_id}_{index}_mask.tif")
    tifffile.imwrite(image_path, image)
    tifffile.imwrite(mask_path, mask)
    return image_path, mask_path


def random_pair(rng: np.random.Generator, size: int = 256, tumor: bool = True) -> tuple[np.ndarray, np.ndarray]:
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    if tumor:
        mask[size // 4 : size // 2, size // 3 : size // 2] = 255
    return image, mask


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """An untrained tiny network exported as our SavedModel."""
    from models import networks
    from models.config import testing_config
    from models.export import export_serving_model

    config = testing_config()
    directory = str(tmp_path_factory.mktemp("tiny_model") / "1")
    export_serving_model(networks.build_model(config), config, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """(config, summary) of one LocalDagRunner run of the whole pipeline on the tiny dataset."""
    from pipeline.config import testing_pipeline_config
    from pipeline.local_runner import run_local

    config = testing_pipeline_config(tiny_dataset, str(tmp_path_factory.mktemp("run")))
    return config, run_local(config)
