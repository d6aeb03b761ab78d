"""The catalogue of bad inputs: what ingestion does with each (see docs/data.md, "Data problems").

Every case damages a small clean dataset (3 patients x 2 slices, 256x256) and
runs the ingestion executor with `max_rejected_fraction=0.5`. Expected:
- "rejected": the file is skipped and listed in rejected.csv with its reason;
- "ignored": not slice data; nothing is rejected and every slice is ingested;
- "fails": the run stops with a one-line SliceError naming the path;
- "anomaly": ingested as is; the curated schema flags it (ExampleValidator then stops the run).
"""

import csv
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow_data_validation as tfdv
import tifffile

from components.slice_example_gen import executor
from core import contracts, slices
from data_schema import features
from pipeline.config import SPLITS
from tests.components.test_slice_example_gen import read_split, run_executor
from tests.conftest import random_pair, write_pair

CASES = ("CASE_A", "CASE_B", "CASE_C")


def _clean_dataset(root) -> None:
    rng = np.random.default_rng(0)
    for case in CASES:
        for index in (1, 2):
            write_pair(root, case, index, *random_pair(rng, tumor=index == 1))


def _image(root, case="CASE_A", index=1):
    return os.path.join(str(root), case, f"{case}_{index}.tif")


def _mask(root, case="CASE_A", index=1):
    return os.path.join(str(root), case, f"{case}_{index}_mask.tif")


def truncated_tiff(root):
    with open(_image(root), "r+b") as handle:
        handle.truncate(200)
    return _image(root)


def text_named_tif(root):
    with open(_image(root), "w") as handle:
        handle.write("not a TIFF")
    return _image(root)


def image_without_mask(root):
    os.remove(_mask(root))
    return _image(root)


def mask_without_image(root):
    os.remove(_image(root))
    return _mask(root)


def mask_of_another_size(root):
    tifffile.imwrite(_mask(root), np.zeros((128, 128), np.uint8))
    return _mask(root)


def resampled_grey_mask(root):
    mask = np.zeros((256, 256), np.uint8)
    mask[100:120, 100:120] = np.linspace(0, 255, 20, dtype=np.uint8)  # interpolated, not thresholded
    tifffile.imwrite(_mask(root), mask)
    return _mask(root)


def grayscale_image(root):
    tifffile.imwrite(_image(root), np.zeros((256, 256), np.uint8))
    return _image(root)


def rgba_image(root):
    tifffile.imwrite(_image(root), np.zeros((256, 256, 4), np.uint8))
    return _image(root)


def sixteen_bit_image(root):
    tifffile.imwrite(_image(root), np.zeros((256, 256, 3), np.uint16))
    return _image(root)


def non_image_files(root):
    (root / "data.csv").write_text("patient,grade\n")
    (root / "CASE_A" / ".DS_Store").write_bytes(b"\0\1\2")
    (root / "CASE_A" / "notes.txt").write_text("scanner B")
    return None


def empty_folders(root):
    (root / "CASE_EMPTY").mkdir()
    (root / "CASE_B" / "empty").mkdir()
    return None


def symbolic_link_loop(root):
    os.symlink(root, root / "CASE_A" / "loop")
    return None


def nested_identical_copy(root):
    shutil.copytree(root / "CASE_B", root / "kaggle_3m" / "CASE_B")
    return None


def duplicate_case_id_with_other_files(root):
    write_pair(root / "site2", "CASE_B", 1, *random_pair(np.random.default_rng(9)))
    return str(root / "site2" / "CASE_B")


def link_outside_the_data_root(root):
    outside = root.parent / f"{root.name}_outside"
    write_pair(outside, "CASE_X", 1, *random_pair(np.random.default_rng(9)))
    os.symlink(outside / "CASE_X", root / "CASE_X")
    return str(root / "CASE_X")


def slices_512_among_256(root):
    write_pair(root, "CASE_D", 1, *random_pair(np.random.default_rng(9), size=512))
    return None


CATALOGUE = [
    (truncated_tiff, "rejected", "not a readable TIFF"),
    (text_named_tif, "rejected", "not a readable TIFF"),
    (image_without_mask, "rejected", "slice has no mask file CASE_A_1_mask.tif"),
    (mask_without_image, "rejected", "mask has no slice file CASE_A_1.tif"),
    (mask_of_another_size, "rejected", r"mask is \[128, 128\] but its slice is \[256, 256\]"),
    (resampled_grey_mask, "rejected", "mask values must be 0/255 or 0/1"),
    (grayscale_image, "rejected", r"expected an image of shape \[height, width, 3\], got \[256, 256\]"),
    (rgba_image, "rejected", r"expected an image of shape \[height, width, 3\], got \[256, 256, 4\]"),
    (sixteen_bit_image, "rejected", "expected uint8 pixels, got uint16"),
    (non_image_files, "ignored", None),
    (empty_folders, "ignored", None),
    (symbolic_link_loop, "ignored", None),
    (nested_identical_copy, "ignored", None),
    (duplicate_case_id_with_other_files, "fails", "case id 'CASE_B' is also .*CASE_B, with other files"),
    (link_outside_the_data_root, "fails", "resolves to .*CASE_X, outside the data folder"),
    (slices_512_among_256, "anomaly", "height"),
]


def _examples(out_dir) -> list:
    return [example for split in SPLITS for example in read_split(str(out_dir), split)]


def _rejected_rows(out_dir) -> list[list[str]]:
    with open(os.path.join(str(out_dir), contracts.REJECTED_FILE)) as rejected:
        return list(csv.reader(rejected))[1:]


@pytest.mark.parametrize("damage, outcome, message", CATALOGUE, ids=[case[0].__name__ for case in CATALOGUE])
def test_bad_input_catalogue(tmp_path, damage, outcome, message):
    root = tmp_path / "data"
    _clean_dataset(root)
    path = damage(root)
    out = tmp_path / "out"
    if outcome == "fails":
        with pytest.raises(slices.SliceError, match=message) as failure:
            run_executor(str(root), str(out), max_rejected_fraction=0.5)
        assert path in str(failure.value) and "\n" not in str(failure.value)
        return
    run_executor(str(root), str(out), max_rejected_fraction=0.5)
    rows = _rejected_rows(out)
    ingested = {
        (e.features.feature[features.CASE_ID].bytes_list.value[0].decode(), e.features.feature[features.SLICE_INDEX].int64_list.value[0])
        for e in _examples(out)
    }
    if outcome == "rejected":
        assert len(rows) == 1 and rows[0][0] in (_image(root), _mask(root))  # the slice's or the lone mask's path
        assert re.search(message, rows[0][1]) and rows[0][1].startswith(path)
        assert len(ingested) == 5 and ("CASE_A", 1) not in ingested
    elif outcome == "ignored":
        assert rows == []
        assert ingested == {(case, index) for case in CASES for index in (1, 2)}
    else:
        assert rows == []
        statistics = tfdv.generate_statistics_from_tfrecord(
            os.path.join(str(out), "Split-*", "*"), stats_options=tfdv.StatsOptions(), pipeline_options=None
        )
        anomalies = tfdv.validate_statistics(statistics, tfdv.load_schema_text(features.schema_path()))
        assert message in anomalies.anomaly_info


def test_unpaired_files_fail_the_run_unless_tolerated(tmp_path):
    root = tmp_path / "data"
    _clean_dataset(root)
    image_without_mask(root)
    with pytest.raises(executor.IngestionError, match=r"CASE_A_1\.tif: slice has no mask file .*1 of 6 slices rejected"):
        run_executor(str(root), str(tmp_path / "out"))
