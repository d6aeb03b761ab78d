import os

import numpy as np
import pytest
import tifffile

from tests.conftest import random_pair, write_pair
from unet4mri import slices


def test_finds_pairs_sorted_by_case_and_number(tmp_path):
    rng = np.random.default_rng(0)
    for case in ("CASE_B", "CASE_A"):
        for index in (10, 2, 1):
            write_pair(tmp_path, case, index, *random_pair(rng))
    (tmp_path / "data.csv").write_text("not a slice")
    (tmp_path / "CASE_A" / ".DS_Store").write_bytes(b"\0\1")
    pairs = slices.find_slice_pairs(str(tmp_path))
    assert [(p.case_id, p.slice_index) for p in pairs] == [
        ("CASE_A", 1),
        ("CASE_A", 2),
        ("CASE_A", 10),
        ("CASE_B", 1),
        ("CASE_B", 2),
        ("CASE_B", 10),
    ]


def test_nested_copy_of_the_archive_is_read_once(tmp_path):
    rng = np.random.default_rng(0)
    write_pair(tmp_path, "CASE_A", 1, *random_pair(rng))
    write_pair(tmp_path / "kaggle_3m", "CASE_A", 1, *random_pair(rng))
    write_pair(tmp_path / "kaggle_3m", "CASE_B", 1, *random_pair(rng))
    pairs = slices.find_slice_pairs(str(tmp_path))
    assert [(p.case_id, os.path.dirname(p.image_path)) for p in pairs] == [
        ("CASE_A", str(tmp_path / "CASE_A")),
        ("CASE_B", str(tmp_path / "kaggle_3m" / "CASE_B")),
    ]


@pytest.mark.parametrize("stored", [255, 1])
def test_masks_stored_0_255_or_0_1_read_as_0_1(tmp_path, stored):
    image, mask = random_pair(np.random.default_rng(0))
    write_pair(tmp_path, "C", 1, image, (mask > 0).astype(np.uint8) * stored)
    read_image, read_mask = slices.read_pair(slices.find_slice_pairs(str(tmp_path))[0])
    np.testing.assert_array_equal(read_image, image)
    np.testing.assert_array_equal(read_mask, (mask > 0).astype(np.uint8))


def test_image_without_mask_names_the_file(tmp_path):
    image_path, mask_path = write_pair(tmp_path, "C", 3, *random_pair(np.random.default_rng(0)))
    os.remove(mask_path)
    with pytest.raises(slices.SliceError, match=r"C_3\.tif: slice has no mask"):
        slices.find_slice_pairs(str(tmp_path))


def test_mask_without_image_names_the_file(tmp_path):
    image_path, mask_path = write_pair(tmp_path, "C", 3, *random_pair(np.random.default_rng(0)))
    os.remove(image_path)
    with pytest.raises(slices.SliceError, match=r"C_3_mask\.tif: mask has no slice"):
        slices.find_slice_pairs(str(tmp_path))


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(slices.SliceError, match="not found"):
        slices.find_slice_pairs(str(tmp_path / "absent"))
    with pytest.raises(slices.SliceError, match="no <case>_<n>.tif slices"):
        slices.find_slice_pairs(str(tmp_path))


def test_truncated_tiff_is_a_clean_error(tmp_path):
    image_path, _ = write_pair(tmp_path, "C", 1, *random_pair(np.random.default_rng(0)))
    with open(image_path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(slices.SliceError, match="C_1.tif: not a readable TIFF"):
        slices.read_image(image_path)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((256, 256), np.uint8), r"shape \[height, width, 3\]"),
        (np.zeros((256, 256, 4), np.uint8), r"shape \[height, width, 3\]"),
        (np.zeros((256, 256, 3), np.uint16), "uint8"),
    ],
)
def test_wrong_image_layouts_are_rejected(tmp_path, image, message):
    path = str(tmp_path / "x.tif")
    tifffile.imwrite(path, image)
    with pytest.raises(slices.SliceError, match=message):
        slices.read_image(path)


def test_mask_of_another_size_or_grey_values_is_rejected(tmp_path):
    path = str(tmp_path / "m.tif")
    tifffile.imwrite(path, np.zeros((128, 128), np.uint8))
    with pytest.raises(slices.SliceError, match=r"mask is \[128, 128\] but its slice is \[256, 256\]"):
        slices.read_mask(path, (256, 256))
    tifffile.imwrite(path, np.arange(256, dtype=np.uint8).reshape(16, 16))
    with pytest.raises(slices.SliceError, match="0/255 or 0/1"):
        slices.read_mask(path)


def test_symbolic_links_to_case_folders_are_followed_without_looping(tmp_path):
    write_pair(tmp_path / "store", "CASE_A", 1, *random_pair(np.random.default_rng(0)))
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "store" / "CASE_A", tmp_path / "data" / "CASE_A")
    os.symlink(tmp_path / "data", tmp_path / "data" / "CASE_A_loop")  # a loop back to the root
    pairs = slices.find_slice_pairs(str(tmp_path / "data"))
    assert [(p.case_id, p.slice_index) for p in pairs] == [("CASE_A", 1)]
