import os
import shutil

import numpy as np
import pytest
import tifffile

from core import slices
from tests.conftest import random_pair, write_pair


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
    shutil.copytree(tmp_path / "CASE_A", tmp_path / "kaggle_3m" / "CASE_A")
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


def test_symbolic_links_inside_the_root_are_followed_without_looping(tmp_path):
    data = tmp_path / "data"
    write_pair(data / "store", "CASE_A", 1, *random_pair(np.random.default_rng(0)))
    os.symlink(data / "store" / "CASE_A", data / "CASE_A")
    os.symlink(data, data / "store" / "loop")  # a loop back to the root
    pairs = slices.find_slice_pairs(str(data))
    assert [(p.case_id, p.slice_index) for p in pairs] == [("CASE_A", 1)]


def test_a_linked_folder_or_file_outside_the_root_is_refused(tmp_path):
    write_pair(tmp_path / "elsewhere", "CASE_A", 1, *random_pair(np.random.default_rng(0)))
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "elsewhere" / "CASE_A", tmp_path / "data" / "CASE_A")
    with pytest.raises(slices.SliceError, match=r"data/CASE_A: resolves to .*elsewhere/CASE_A, outside the data folder"):
        slices.find_slice_pairs(str(tmp_path / "data"))
    os.remove(tmp_path / "data" / "CASE_A")
    (tmp_path / "data" / "CASE_A").mkdir()
    for name in ("CASE_A_1.tif", "CASE_A_1_mask.tif"):
        os.symlink(tmp_path / "elsewhere" / "CASE_A" / name, tmp_path / "data" / "CASE_A" / name)
    with pytest.raises(slices.SliceError, match=r"CASE_A_1(_mask)?\.tif: resolves to .*, outside the data folder"):
        slices.find_slice_pairs(str(tmp_path / "data"))


def test_a_case_id_in_two_folders_with_other_files_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    write_pair(tmp_path / "site1", "CASE_A", 1, *random_pair(rng))
    write_pair(tmp_path / "site2", "CASE_A", 1, *random_pair(rng))
    with pytest.raises(slices.SliceError, match=r"site2/CASE_A: case id 'CASE_A' is also .*site1/CASE_A, with other files"):
        slices.find_slice_pairs(str(tmp_path))


def test_unpaired_files_are_listed_with_their_reasons(tmp_path):
    rng = np.random.default_rng(0)
    for index in (1, 2, 3):
        write_pair(tmp_path, "C", index, *random_pair(rng))
    os.remove(tmp_path / "C" / "C_2_mask.tif")
    os.remove(tmp_path / "C" / "C_3.tif")
    listing = slices.list_slices(str(tmp_path))
    assert [p.slice_index for p in listing.pairs] == [1]
    assert [(os.path.basename(path), reason.split(": ", 1)[1]) for path, reason in listing.unpaired] == [
        ("C_2.tif", "slice has no mask file C_2_mask.tif"),
        ("C_3_mask.tif", "mask has no slice file C_3.tif"),
    ]
    assert [p.slice_index for p in slices.list_slices(str(tmp_path), masks_required=False).pairs] == [1, 2]


def test_a_tiff_claiming_a_huge_image_is_refused_before_decoding(tmp_path):
    path = str(tmp_path / "huge.tif")
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(shape=(20000, 20000, 3), dtype=np.uint8)  # header only: an empty 1.2 GB image
    with pytest.raises(slices.SliceError, match=r"huge.tif: TIFF claims shape \[20000, 20000, 3\]"):
        slices.read_image(path)


def test_context_paths_are_the_neighbours_in_the_case_repeating_at_the_ends(tmp_path):
    rng = np.random.default_rng(0)
    for case, indices in (("A", (1, 2, 3, 5)), ("B", (1,))):
        for index in indices:
            write_pair(tmp_path, case, index, *random_pair(rng, size=16))
    pairs = slices.find_slice_pairs(str(tmp_path))
    names = [[os.path.basename(path) for path in paths] for paths in slices.context_paths(pairs, 1)]
    assert names == [
        ["A_1.tif", "A_2.tif"],  # below slice 1 there is none: slice 1 repeats
        ["A_1.tif", "A_3.tif"],
        ["A_2.tif", "A_5.tif"],  # slice 4 is missing: the next existing one is the neighbour
        ["A_3.tif", "A_5.tif"],
        ["B_1.tif", "B_1.tif"],  # a case of one slice is its own context
    ]
    assert [len(paths) for paths in slices.context_paths(pairs, 2)] == [4] * 5 and slices.context_paths(pairs, 0) == [[]] * 5
    stack = slices.read_stack(slices.read_image(pairs[1].image_path), slices.context_paths(pairs, 1)[1])
    assert stack.shape == (16, 16, 9)
    np.testing.assert_array_equal(stack[..., 3:6], slices.read_image(pairs[0].image_path))


def test_a_context_slice_of_another_size_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    write_pair(tmp_path, "A", 1, *random_pair(rng, size=16))
    write_pair(tmp_path, "A", 2, *random_pair(rng, size=32))
    pairs = slices.find_slice_pairs(str(tmp_path))
    with pytest.raises(slices.SliceError, match=r"A_2.tif: context slice is \[32, 32, 3\], its neighbour is \[16, 16, 3\]"):
        slices.read_stack(slices.read_image(pairs[0].image_path), slices.context_paths(pairs, 1)[0])
