import json
import os

import numpy as np
import pytest
from tfx.types import artifact_utils, standard_artifacts

from components.positive_pixel_weight import executor, spec
from core import contracts, slices, synthetic_data
from tests.helpers import write_examples


def run(examples_dir: str, out_dir: str) -> dict:
    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train"])
    hyperparameters = standard_artifacts.HyperParameters()
    hyperparameters.uri = out_dir
    os.makedirs(out_dir, exist_ok=True)
    executor.Executor().Do({spec.EXAMPLES_KEY: [examples]}, {spec.HYPERPARAMETERS_KEY: [hyperparameters]}, {spec.SPLIT_KEY: "train"})
    assert os.listdir(out_dir) == [contracts.HYPERPARAMETERS_FILE]  # the Trainer needs exactly one file
    with open(os.path.join(out_dir, contracts.HYPERPARAMETERS_FILE)) as source:
        return json.load(source)


def test_weight_is_negative_over_positive_pixels(tiny_dataset, tmp_path):
    cases = [synthetic_data.case_id(i, 0) for i in (0, 1, 3)]
    write_examples(tiny_dataset, str(tmp_path / "examples" / "Split-train"), cases)
    result = run(str(tmp_path / "examples"), str(tmp_path / "out"))
    masks = [slices.read_mask(p.mask_path) for p in slices.find_slice_pairs(tiny_dataset) if p.case_id in cases]
    positive = int(sum(m.sum() for m in masks))
    negative = int(sum(m.size for m in masks)) - positive
    assert (result["positive_pixels"], result["negative_pixels"]) == (positive, negative)
    assert result["positive_pixel_weight"] == pytest.approx(negative / positive)
    assert result["positive_pixel_weight"] > 1


def test_split_without_tumor_is_a_clear_error(tmp_path):
    from tests.conftest import random_pair, write_pair

    rng = np.random.default_rng(0)
    for index in (1, 2):
        write_pair(tmp_path / "data", "CASE", index, *random_pair(rng, tumor=False))
    write_examples(str(tmp_path / "data"), str(tmp_path / "examples" / "Split-train"))
    with pytest.raises(executor.EmptyClassError, match="0 tumor and 131072 background pixels"):
        run(str(tmp_path / "examples"), str(tmp_path / "out"))
