"""Brain-MRI volumes as users have them: BraTS-style case folders of NIfTI files or DICOM series.

Layout (BraTS): one folder per case, one file per contrast, names ending in
the layout's suffixes (`VolumeLayout`; defaults those of BraTS 2017-2021):

  <root>/<case>/<case>_t1.nii.gz      pre-contrast T1   -> channel 0
  <root>/<case>/<case>_flair.nii.gz   FLAIR             -> channel 1
  <root>/<case>/<case>_t1ce.nii.gz    post-contrast T1  -> channel 2
  <root>/<case>/<case>_seg.nii.gz     labels (integers; optional for prediction)

`.nii` is read as well as `.nii.gz`, and in place of a file a folder
`<case>_flair/` (or `flair/`) holding exactly one DICOM series is read with
SimpleITK (`core.dicom`). Case folders may sit at any depth below the root.

Every volume is reoriented to the closest canonical orientation, RAS+
(nibabel's convention: array axes [x, y, z] point to the patient's right,
anterior and superior), so axial slices are `data[:, :, k]`, k from inferior
to superior. A case is valid when its contrasts and label share one shape and
one affine (within 1e-3 mm), voxels are finite, and the label is integer;
anything else raises `VolumeError` naming the file.

Tumor labels (`tumor_labels`): `whole` counts every label > 0 (BraTS whole
tumor); `core` the labels 1, 3, 4 (necrotic/non-enhancing core and enhancing
tumor: BraTS 2017-2021 mark enhancing 4, BraTS 2023 marks it 3); `enhancing`
the labels 3 and 4.
"""

import dataclasses
import math
import os
import re

import nibabel as nib
import numpy as np

from core import dicom
from core.config_fields import option
from core.slices import SliceError

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
MAX_VOXELS = 1024**3  # a damaged header can claim any size: refuse before reading
AFFINE_TOLERANCE_MM = 1e-3
TUMOR_LABEL_SETS: dict[str, tuple[int, ...] | None] = {"whole": None, "core": (1, 3, 4), "enhancing": (3, 4)}
_RAS = nib.orientations.axcodes2ornt("RAS")


class VolumeError(SliceError):
    """A volume, DICOM series or case that cannot be used; the message names the file."""


@dataclasses.dataclass(frozen=True)
class VolumeLayout:
    """How the files of a case are named and which labels are tumor (see the module docstring)."""

    pre_contrast_suffix: str = option("_t1", "volumes: name suffix of the pre-contrast T1 file (channel 0)")
    flair_suffix: str = option("_flair", "volumes: name suffix of the FLAIR file (channel 1)")
    post_contrast_suffix: str = option("_t1ce", "volumes: name suffix of the post-contrast T1 file (channel 2)")
    label_suffix: str = option("_seg", "volumes: name suffix of the label file")
    tumor_labels: str = option("whole", "volumes: labels counted as tumor", choices=tuple(TUMOR_LABEL_SETS))

    def __post_init__(self):
        suffixes = self.suffixes
        if not all(suffixes) or len(set(suffixes)) != len(suffixes):
            raise ValueError(f"volume suffixes must be non-empty and distinct, got {list(suffixes)}")
        if self.tumor_labels not in TUMOR_LABEL_SETS:
            raise ValueError(f"tumor_labels must be one of {list(TUMOR_LABEL_SETS)}, got {self.tumor_labels!r}")

    @property
    def contrast_suffixes(self) -> tuple[str, str, str]:
        """In channel order: pre-contrast, FLAIR, post-contrast."""
        return (self.pre_contrast_suffix, self.flair_suffix, self.post_contrast_suffix)

    @property
    def suffixes(self) -> tuple[str, ...]:
        return (*self.contrast_suffixes, self.label_suffix)


DEFAULT_LAYOUT = VolumeLayout()


@dataclasses.dataclass(frozen=True)
class VolumeCase:
    """The files of one case: `contrasts` in channel order, `label` None when the case has none."""

    case_id: str
    folder: str
    contrasts: tuple[str, str, str]
    label: str | None


@dataclasses.dataclass(frozen=True)
class Volume:
    """One volume, reoriented. data: float32 [x, y, z] in RAS+; affine: its 4x4 voxel-to-RAS (mm);
    spacing_mm: voxel size along x, y, z; source: the image as read (original orientation,
    affine and header: the reference a prediction is written with)."""

    path: str
    data: np.ndarray
    affine: np.ndarray
    spacing_mm: tuple[float, float, float]
    source: nib.Nifti1Image


@dataclasses.dataclass(frozen=True)
class LoadedCase:
    """A validated case. images: float32 [x, y, z, 3] in RAS+, channels pre-contrast, FLAIR,
    post-contrast; mask: uint8 [x, y, z] in 0/1 (the chosen tumor labels) or None;
    reference: the FLAIR volume (orientation, affine and header for writing predictions)."""

    case: VolumeCase
    images: np.ndarray
    mask: np.ndarray | None
    reference: Volume

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return self.reference.spacing_mm


def _strip_extension(name: str, is_folder: bool) -> str | None:
    if is_folder:
        return name
    lower = name.lower()
    for extension in NIFTI_EXTENSIONS:
        if lower.endswith(extension):
            return name[: -len(extension)]
    return None


def _entries(folder: str) -> list[tuple[str, str]]:
    """(stem, path) of the NIfTI files and sub-folders in `folder`."""
    entries = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stem = _strip_extension(name, os.path.isdir(path))
        if stem is not None:
            entries.append((stem, path))
    return entries


def _match_suffix(stem: str, suffixes: tuple[str, ...]) -> tuple[str, int] | None:
    """(case prefix, index of the suffix) for the longest suffix `stem` ends with."""
    for index in sorted(range(len(suffixes)), key=lambda i: -len(suffixes[i])):
        suffix = suffixes[index]
        if stem.endswith(suffix):
            return stem[: -len(suffix)], index
        if stem == suffix.lstrip("_-."):  # a bare `flair/` series folder inside the case folder
            return "", index
    return None


def find_volume_cases(root: str, layout: VolumeLayout = DEFAULT_LAYOUT, labels_required: bool = True):
    """(cases, problems) under `root`, sorted by case id: problems are (path, one-line reason)
    for a case that lacks a contrast (or its label, when `labels_required`).

    Raises VolumeError for a missing folder or one without any case file.
    """
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise VolumeError(f"data folder not found: {root}")
    cases, problems = [], []
    for folder, subfolders, _ in os.walk(root):
        subfolders.sort()
        found: dict[str, dict[int, str]] = {}
        for stem, path in _entries(folder):
            match = _match_suffix(stem, layout.suffixes)
            if match:
                found.setdefault(match[0] or os.path.basename(folder), {})[match[1]] = path
        for case_id, files in sorted(found.items()):
            subfolders[:] = [name for name in subfolders if os.path.join(folder, name) not in files.values()]
            missing = [layout.suffixes[i] for i in range(4) if i not in files and (i < 3 or labels_required)]
            if missing:
                problems.append((folder, f"{folder}: case {case_id!r} has no {' or '.join(case_id + s for s in missing)} file"))
                continue
            cases.append(VolumeCase(case_id, folder, (files[0], files[1], files[2]), files.get(3)))
    if not cases and not problems:
        raise VolumeError(f"no case files ({', '.join('<case>' + s + '.nii.gz' for s in layout.suffixes)}) found under {root}")
    return sorted(cases, key=lambda case: case.case_id), problems


def has_volumes(root: str, layout: VolumeLayout = DEFAULT_LAYOUT) -> bool:
    """Whether `root` holds volumes (a NIfTI file, or a folder named like a contrast) rather than TIFF slices."""
    for _, subfolders, files in os.walk(root):
        if any(_strip_extension(name, False) for name in files):
            return True
        if any(_match_suffix(name, layout.contrast_suffixes) for name in subfolders):
            return True
    return False


def read_image(path: str) -> nib.Nifti1Image:
    """A NIfTI file or a DICOM series folder as a nibabel image (data not yet checked)."""
    if os.path.isdir(path):
        try:
            return dicom.read_series(path)
        except SliceError as error:
            raise VolumeError(str(error)) from error
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for damaged files
        raise VolumeError(f"{path}: not a readable NIfTI ({type(error).__name__}: {error})") from error
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"{path}: not a NIfTI image ({type(image).__name__})")
    return image


def load_volume(path: str) -> Volume:
    """Read, check and reorient one volume (see the module docstring). A 4D file with one
    volume ([x, y, z, 1]) is accepted; more volumes, NaN or infinite voxels are errors."""
    image = read_image(path)
    shape = tuple(int(n) for n in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise VolumeError(f"{path}: expected a 3D volume, got shape {list(image.shape)}")
    if math.prod(shape) > MAX_VOXELS:
        raise VolumeError(f"{path}: volume claims shape {list(shape)}, more than {MAX_VOXELS} voxels")
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as error:  # a truncated gzip surfaces only when the data is read
        raise VolumeError(f"{path}: not a readable volume ({type(error).__name__}: {error})") from error
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise VolumeError(f"{path}: {bad} NaN or infinite voxels")
    orientation = nib.orientations.io_orientation(image.affine)
    canonical = nib.orientations.apply_orientation(data, orientation)
    affine = image.affine @ nib.orientations.inv_ornt_aff(orientation, shape)
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    if min(spacing) <= 0:
        raise VolumeError(f"{path}: voxel spacing must be positive, got {list(spacing)}")
    return Volume(path, np.ascontiguousarray(canonical, dtype=np.float32), affine, spacing, image)


def to_source_orientation(canonical: np.ndarray, volume: Volume) -> np.ndarray:
    """An array [x, y, z] in RAS+ (as `volume.data`) back in the axes of the file it came from."""
    orientation = nib.orientations.io_orientation(volume.source.affine)
    return nib.orientations.apply_orientation(canonical, nib.orientations.ornt_transform(_RAS, orientation))


def tumor_mask(labels: np.ndarray, tumor_labels: str = "whole") -> np.ndarray:
    """uint8 0/1 of `labels` (any shape, integer values) for a TUMOR_LABEL_SETS name."""
    values = TUMOR_LABEL_SETS[tumor_labels]
    return (labels > 0 if values is None else np.isin(labels, values)).astype(np.uint8)


def load_case(case: VolumeCase, layout: VolumeLayout = DEFAULT_LAYOUT, with_label: bool = True) -> LoadedCase:
    """The case's contrasts and (when it has one and `with_label`) its tumor mask; VolumeError when
    the files differ in shape or affine, or the label is not integer."""
    volumes = [load_volume(path) for path in case.contrasts]
    label = load_volume(case.label) if with_label and case.label else None
    reference = volumes[1]
    for other in [*volumes, *([label] if label else [])]:
        if other.data.shape != reference.data.shape:
            raise VolumeError(
                f"{other.path}: shape {list(other.source.shape)} differs from {reference.path}: {list(reference.source.shape)}"
            )
        if not np.allclose(other.source.affine, reference.source.affine, atol=AFFINE_TOLERANCE_MM):
            raise VolumeError(f"{other.path}: affine differs from {reference.path}'s (not aligned)")
    mask = None
    if label is not None:
        fractional = label.data[label.data != np.round(label.data)]
        if fractional.size:
            raise VolumeError(f"{label.path}: label is not integer (found {float(fractional[0]):g})")
        mask = tumor_mask(label.data, layout.tumor_labels)
    images = np.stack([volume.data for volume in volumes], axis=-1)
    return LoadedCase(case, images, mask, reference)


def write_mask_like(mask: np.ndarray, reference: Volume, path: str) -> str:
    """Write `mask` (uint8 0/1 [x, y, z] in RAS+, as `reference.data`) as a NIfTI in the
    reference's own orientation, affine and header (data type uint8, no scaling), so
    viewers lay it over the scan. Written to a temporary name first: an interrupted
    write never leaves a partial file under `path`."""
    if mask.shape != reference.data.shape:
        raise ValueError(f"{path}: mask shape {list(mask.shape)} differs from the volume's {list(reference.data.shape)}")
    data = np.ascontiguousarray(to_source_orientation(mask.astype(np.uint8), reference))
    source = reference.source
    image = type(source)(data, source.affine, source.header.copy())
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    image.header["descrip"] = b"unet4mri predicted tumor mask"
    for kind in ("qform", "sform"):  # both of the scan's transforms, with their codes, as they were
        code = int(source.header[f"{kind}_code"])
        if code:
            getattr(image, f"set_{kind}")(getattr(source, f"get_{kind}")(), code=code)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = re.sub(r"\.nii(\.gz)?$", r".partial.nii\1", path)
    nib.save(image, partial)
    os.replace(partial, path)
    return path
