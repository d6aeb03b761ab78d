"""Reading brain-MRI slices in the layout of the LGG "kaggle_3m" dataset.

Layout: `<root>/<CASE>/<CASE>_<n>.tif` is one axial slice, uint8 [256, 256, 3]
(channels pre-contrast, FLAIR, post-contrast), and `<CASE>_<n>_mask.tif` its
tumor mask, uint8 [256, 256] stored 0/255 (0/1 is accepted too). Files that
are not TIFFs (the archive's `data.csv`, `README.md`, `.DS_Store`) are ignored.
The Kaggle archive holds a second full copy of the data in a nested
`kaggle_3m/` folder: a case is read once, from its shallowest folder, when
both copies hold the same bytes; a case id in two folders with different
files is an error. Paths are resolved and must stay inside the data folder.
"""

import dataclasses
import filecmp
import math
import os
import re

import numpy as np
import tifffile

MAX_VALUES = 4096 * 4096 * 4  # pixels x channels of the largest slice read
_SLICE_NAME = re.compile(r"^(?P<case>.+)_(?P<index>\d+)(?P<mask>_mask)?\.tiff?$", re.IGNORECASE)


class SliceError(ValueError):
    """A slice or mask file that cannot be used; the message names the file."""


@dataclasses.dataclass(frozen=True)
class SlicePair:
    """One slice's image and mask files."""

    case_id: str
    slice_index: int
    image_path: str
    mask_path: str | None  # None only from find_slice_pairs(..., masks_required=False)


@dataclasses.dataclass(frozen=True)
class SliceListing:
    """What a data folder holds: the usable pairs, and the files that cannot be
    paired with their one-line reasons (an image without its mask, a mask
    without its image)."""

    pairs: list[SlicePair]
    unpaired: list[tuple[str, str]]


def list_slices(root: str, masks_required: bool = True) -> SliceListing:
    """All image/mask pairs under `root`, sorted by case and slice number.

    Raises SliceError for a missing folder, a folder without slices, a path
    that resolves outside `root` (a symbolic link leading elsewhere), and one
    case id in two folders with different files (which copy is the patient?).
    Two folders of one case with the same files (the Kaggle archive's nested
    copy) are read once, from the shallowest. Without `masks_required`
    (prediction), a slice may lack its mask (mask_path None) and lone masks
    are ignored.
    """
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise SliceError(f"data folder not found: {root}")
    case_folders: dict[str, str] = {}
    for folder, files in sorted(_walk(root), key=lambda walk: walk[0].count(os.sep)):
        if not any(_SLICE_NAME.match(name) for name in files):
            continue
        case_id = os.path.basename(folder)
        if case_id in case_folders:
            _check_same_files(case_folders[case_id], folder)
            continue
        case_folders[case_id] = folder
    pairs, unpaired = [], []
    for case_id, folder in sorted(case_folders.items()):
        case_pairs, case_unpaired = _case_pairs(root, case_id, folder, masks_required)
        pairs.extend(case_pairs)
        unpaired.extend(case_unpaired)
    if not pairs:
        raise SliceError(unpaired[0][1] if unpaired else f"no <case>_<n>.tif slices found under {root}")
    return SliceListing(pairs, unpaired)


def find_slice_pairs(root: str, masks_required: bool = True) -> list[SlicePair]:
    """`list_slices(root, masks_required).pairs`; SliceError naming the first unpaired file if any."""
    listing = list_slices(root, masks_required)
    if listing.unpaired:
        raise SliceError(listing.unpaired[0][1])
    return listing.pairs


def _walk(root: str):
    """(folder, file names) under root, following symbolic links to folders but
    never in a loop and never out of root."""
    seen = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        _check_inside(root, folder, real)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        yield folder, files


def _check_inside(root: str, path: str, real: str) -> None:
    if os.path.commonpath([root, real]) != root:
        raise SliceError(f"{path}: resolves to {real}, outside the data folder {root}")


def _check_same_files(first: str, second: str) -> None:
    names = sorted(name for name in os.listdir(first) if _SLICE_NAME.match(name))
    if (
        names != sorted(name for name in os.listdir(second) if _SLICE_NAME.match(name))
        or filecmp.cmpfiles(first, second, names, shallow=False)[0] != names
    ):
        raise SliceError(f"{second}: case id {os.path.basename(first)!r} is also {first}, with other files; rename or remove one")


def _case_pairs(root: str, case_id: str, folder: str, masks_required: bool) -> tuple[list[SlicePair], list[tuple[str, str]]]:
    images: dict[int, str] = {}
    masks: dict[int, str] = {}
    for name in sorted(os.listdir(folder)):
        match = _SLICE_NAME.match(name)
        if not match or match["case"] != case_id:
            continue
        path = os.path.join(folder, name)
        _check_inside(root, path, os.path.realpath(path))
        target = masks if match["mask"] else images
        target[int(match["index"])] = path
    unpaired = []
    if masks_required:
        unpaired += [
            (path, f"{path}: slice has no mask file {case_id}_{index}_mask.tif") for index, path in images.items() if index not in masks
        ]
        unpaired += [
            (path, f"{path}: mask has no slice file {case_id}_{index}.tif") for index, path in masks.items() if index not in images
        ]
        images = {index: path for index, path in images.items() if index in masks}
    pairs = [SlicePair(case_id, index, images[index], masks.get(index)) for index in sorted(images)]
    return pairs, sorted(unpaired)


def context_paths(pairs: list[SlicePair], context_slices: int) -> list[list[str]]:
    """For each pair, the image paths of the `context_slices` slices below and
    above it in its case (by slice number; at the volume's ends the nearest
    existing slice repeats). `pairs` sorted by case and slice, as listed."""
    if context_slices < 0:
        raise ValueError(f"context_slices must be >= 0, got {context_slices}")
    by_case: dict[str, list[int]] = {}  # case -> indices into pairs, in slice order
    for index, pair in enumerate(pairs):
        by_case.setdefault(pair.case_id, []).append(index)
    offsets = [*range(-context_slices, 0), *range(1, context_slices + 1)]
    neighbours: list[list[str]] = [[] for _ in pairs]
    for case in by_case.values():
        for position, index in enumerate(case):
            neighbours[index] = [pairs[case[min(max(position + offset, 0), len(case) - 1)]].image_path for offset in offsets]
    return neighbours


def read_stack(image: np.ndarray, neighbour_paths: list[str]) -> np.ndarray:
    """`image` [H, W, 3] with its neighbours' images appended: uint8 [H, W, 3 (1 + len(neighbours))]."""
    stack = [image]
    for path in neighbour_paths:
        neighbour = read_any_image(path)
        if neighbour.shape != image.shape:
            raise SliceError(f"{path}: context slice is {list(neighbour.shape)}, its neighbour is {list(image.shape)}")
        stack.append(neighbour)
    return np.concatenate(stack, axis=2)


def read_image(path: str) -> np.ndarray:
    """A slice as uint8 [height, width, 3]; SliceError naming the file if it is not one."""
    image = _read_tiff(path)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SliceError(f"{path}: expected an image of shape [height, width, 3], got {list(image.shape)}")
    return image


def read_mask(path: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as uint8 [height, width] with values 0/1 (stored 0/255 or 0/1)."""
    mask = _read_tiff(path)
    if mask.ndim == 3 and mask.shape[2] in (1, 3, 4):
        mask = mask[..., 0]  # some exporters write grey masks as RGB(A)
    if mask.ndim != 2:
        raise SliceError(f"{path}: expected a mask of shape [height, width], got {list(mask.shape)}")
    if shape is not None and mask.shape != tuple(shape):
        raise SliceError(f"{path}: mask is {list(mask.shape)} but its slice is {list(shape)}")
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        raise SliceError(f"{path}: mask values must be 0/255 or 0/1, found {values[:8].tolist()}")
    return (mask > 0).astype(np.uint8)


def read_pair(pair: SlicePair) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H, W, 3], mask uint8 [H, W] in 0/1) of one pair."""
    image = read_image(pair.image_path)
    return image, read_mask(pair.mask_path, image.shape[:2])


def read_any_image(path: str) -> np.ndarray:
    """A slice from a TIFF (as `read_image`) or a PNG/JPEG (converted to RGB), uint8 [H, W, 3]."""
    if path.lower().endswith((".tif", ".tiff")):
        return read_image(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise SliceError(f"{path}: not a readable image ({error})") from error


def _read_tiff(path: str) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tiff:
            # The first page only: a slice is one page, and listing the pages of a
            # damaged file can walk millions of bogus ones.
            page = tiff.pages[0]
            if math.prod(page.shape) > MAX_VALUES:  # a damaged header can claim gigabytes
                raise SliceError(f"{path}: TIFF claims shape {list(page.shape)}, more than {MAX_VALUES} values")
            array = page.asarray()
    except SliceError:
        raise
    except Exception as error:  # tifffile raises many types for damaged files
        raise SliceError(f"{path}: not a readable TIFF ({type(error).__name__}: {error})") from error
    if array.dtype != np.uint8:
        raise SliceError(f"{path}: expected uint8 pixels, got {array.dtype}")
    return array
