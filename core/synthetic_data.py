"""A realistic synthetic dataset in the kaggle_3m layout, deterministic for a seed.

Anatomy comes from the MNI152 2009 templates (T1, grey and white matter, brain
mask at 1 mm) that ship inside the nilearn wheel and load offline. Each
synthetic patient is a different in-plane rotation, scale and shift of that
brain, sampled as axial slices across the whole brain, with its own tissue
contrasts, bias field and noise, and one or two 3D lesions that are
hyperintense on FLAIR, of irregular shape and of varied size and contrast, with
a faint oedema rim outside the mask. About a third of the slices show tumor;
per-slice tumor areas range from a few dozen to several thousand pixels.

Slices are written as `<out>/<CASE>/<CASE>_<n>.tif`, uint8 [size, size, 3]
(pre-contrast, FLAIR, post-contrast), and masks as `<CASE>_<n>_mask.tif`,
uint8 [size, size] stored 0/255, exactly like the LGG kaggle_3m dataset.

`generate_volume_dataset` writes the same patients as BraTS-style NIfTI case
folders instead (see `core.volumes`): `<CASE>_t1`, `_flair`, `_t1ce` and `_seg`
`.nii.gz`, with anisotropic voxels (the slices are several mm apart), each
patient stored in another axis order and orientation, and the affine turned
a few degrees, as scanners write them; T1 volumes as int16, FLAIR as float32.

This is the `default` family, the one the team tunes on. `FAMILIES` also holds
`heads` (the same patients, every second one with a head around the brain:
`core.synthetic_head`), `varied` (the `heads` patients with lesions drawn from
the wide ranges of `LesionVariety`) and `unseen` (`core.synthetic_unseen`: another head anatomy, lesion model and
scanner), written by the same two functions with `family="unseen"`.
"""

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tifffile
from scipy import ndimage

from core import mni_templates, synthetic_head, synthetic_unseen, volume_grid

FIELD_OF_VIEW_MM = 180.0
# Tissue intensities on a 0..1 scale per channel (pre-contrast, FLAIR, post-contrast).
_TISSUE_INTENSITY = {
    "white_matter": np.array([0.78, 0.42, 0.74]),
    "grey_matter": np.array([0.56, 0.58, 0.55]),
    "csf": np.array([0.18, 0.12, 0.20]),
}


@dataclasses.dataclass(frozen=True)
class LesionVariety:
    """The lesions of the `varied` family: domain randomization of the lesion, where the default
    family has one model (one or two lesions centred in deep white matter, 5-30 mm, sharp edges,
    dark on T1, clearly bright on FLAIR).

    extra_lesions: 0..extra lesions more than the default's one or two, per patient.
    cortical_probability: a lesion is centred in cortex (grey matter > 0.5, 10th-90th percentile
      of the patient's slice heights) with this probability, else in deep white matter as by default.
    radius_mm: each lesion's mean radius, log-uniform.
    edge: the width, as a fraction of the radius, over which the lesion fades into the brain
      (uniform; the default's 0.16 is a sharp edge); the mask stays where the weight is 0.5.
    t1: pre-contrast intensity, x grey matter (dark, iso or bright); flair: FLAIR, + grey matter
      (faint to bright); enhancing: post-contrast x grey matter with probability
      enhancing_probability, else non_enhancing. One draw per patient for all its lesions.
    """

    extra_lesions: int = 2
    cortical_probability: float = 0.5
    radius_mm: tuple[float, float] = (2.5, 30.0)
    edge: tuple[float, float] = (0.16, 0.6)
    t1: tuple[float, float] = (0.6, 1.3)
    flair: tuple[float, float] = (0.05, 0.4)
    enhancing_probability: float = 0.4
    enhancing: tuple[float, float] = (1.2, 1.8)
    non_enhancing: tuple[float, float] = (0.8, 1.05)


def case_id(patient_index: int, seed: int) -> str:
    """Folder name of a synthetic patient, shaped like TCGA_CS_4941_19960909."""
    site = ("SA", "SB", "SC", "SD")[patient_index % 4]
    return f"SYN_{site}_{seed % 10000:04d}_{patient_index:04d}"


def _check_sizes(patients: int, slices: int, image_size: int) -> None:
    if patients < 1 or slices < 1:
        raise ValueError(f"need at least one patient and one slice, got patients={patients}, slices={slices}")
    if not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be in [32, 1024], got {image_size}")


def generate_dataset(out_dir: str, patients: int, slices: int, seed: int, image_size: int = 256, family: str = "default") -> list[str]:
    """Write `patients` synthetic cases of `slices` axial slices each; returns the case ids.

    A patient depends only on (family, seed, its index), so a larger dataset extends a
    smaller one with the same seed. `family` is a key of `FAMILIES`.
    """
    chosen = _family(family)
    _check_sizes(patients, slices, image_size)
    ids = []
    for index in range(patients):
        _, (images, masks, _) = chosen.draw(index, seed, slices, image_size)
        ids.append(chosen.case_id(index, seed))
        _write_case(os.path.join(out_dir, ids[-1]), ids[-1], images, masks)
    return ids


def _write_case(folder: str, name: str, images: np.ndarray, masks: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    for number, (image, mask) in enumerate(zip(images, masks), start=1):
        tifffile.imwrite(os.path.join(folder, f"{name}_{number}.tif"), image)
        tifffile.imwrite(os.path.join(folder, f"{name}_{number}_mask.tif"), mask * np.uint8(255))


def _synthesize(
    rng: np.random.Generator, slices: int, image_size: int, with_head: bool = False, variety: LesionVariety | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """One patient: images uint8 [slices, size, size, 3], masks uint8 0/1 [slices, size, size], slice spacing mm.

    The head and the lesion variety are drawn from streams of their own: with `with_head`
    false and no `variety`, the patient is to the byte the skull-stripped patient of the
    `default` family.
    """
    head_rng = rng.spawn(1)[0]
    vary = rng.spawn(1)[0] if variety else None
    templates = mni_templates.load()
    coordinates = _sampling_grid(rng, templates, slices, image_size)
    slice_mm = float(coordinates[2, 1, 0, 0] - coordinates[2, 0, 0, 0]) if slices > 1 else 1.0
    grey, white, brain = (
        ndimage.map_coordinates(volume, coordinates, order=1, mode="constant")
        for volume in (templates.grey_matter, templates.white_matter, templates.brain)
    )
    csf = np.clip(brain - grey - white, 0.0, 1.0)
    lesion = np.zeros_like(brain)
    oedema = np.zeros_like(brain)
    count = 1 + (rng.random() < 0.3)
    for _ in range(count + (vary.integers(0, variety.extra_lesions + 1) if vary else 0)):
        if vary:
            cortical = vary.random() < variety.cortical_probability
            radius = np.exp(vary.uniform(*np.log(variety.radius_mm)))
            weight, rim = _lesion(rng, templates, coordinates, cortical, radius, edge=vary.uniform(*variety.edge))
        else:
            weight, rim = _lesion(rng, templates, coordinates)
        lesion, oedema = np.maximum(lesion, weight * brain), np.maximum(oedema, rim * brain)
    contrast = {name: value * rng.normal(1.0, 0.05, 3) for name, value in _TISSUE_INTENSITY.items()}
    lesion_intensity = np.array(
        [
            contrast["grey_matter"][0] * rng.uniform(0.75, 0.95),
            contrast["grey_matter"][1] + rng.uniform(0.15, 0.42),  # FLAIR-hyperintense, sometimes subtle
            contrast["grey_matter"][2] * (rng.uniform(1.2, 1.5) if rng.random() < 0.3 else rng.uniform(0.8, 1.0)),
        ]
    )
    if vary:
        lesion_intensity = np.array(
            [
                contrast["grey_matter"][0] * vary.uniform(*variety.t1),
                contrast["grey_matter"][1] + vary.uniform(*variety.flair),
                contrast["grey_matter"][2]
                * vary.uniform(*(variety.enhancing if vary.random() < variety.enhancing_probability else variety.non_enhancing)),
            ]
        )
    tissue = white[..., None] * contrast["white_matter"] + grey[..., None] * contrast["grey_matter"] + csf[..., None] * contrast["csf"]
    tissue *= 1.0 + 0.12 * oedema[..., None] * np.array([-0.3, 1.0, 0.0])
    signal = tissue * (1.0 - lesion[..., None]) + lesion[..., None] * brain[..., None] * lesion_intensity
    if with_head:
        signal += (1.0 - brain[..., None]) * synthetic_head.colour(head_rng, coordinates, contrast["csf"])
    signal *= _texture(rng, signal.shape[:3])[..., None] * _bias_field(rng, signal.shape[:3])[..., None]
    noise_sigma = rng.uniform(0.012, 0.035)
    signal = np.abs(signal + rng.normal(0.0, noise_sigma, signal.shape))  # magnitude images: Rician-like
    gain = rng.uniform(0.75, 1.15, 3) * 255.0
    images = np.clip(signal * gain, 0, 255).astype(np.uint8)
    masks = (lesion > 0.5).astype(np.uint8)
    return images, masks, slice_mm


def _sampling_grid(rng: np.random.Generator, templates: mni_templates.MniTemplates, slices: int, size: int) -> np.ndarray:
    """Template voxel coordinates [3, slices, size, size] of every output pixel."""
    z_low, z_high = templates.brain_z_range
    span = z_high - z_low
    z_values = np.linspace(z_low + rng.uniform(0.02, 0.1) * span, z_high - rng.uniform(0.02, 0.1) * span, slices)
    angle = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-8, 8, 2)
    millimetres = (np.arange(size) - (size - 1) / 2.0) * (FIELD_OF_VIEW_MM / size)
    rows, columns = np.meshgrid(millimetres, millimetres, indexing="ij")
    cos, sin = np.cos(angle), np.sin(angle)
    # Radiological display: image right is patient left (x), image top is anterior (+y).
    x = (cos * columns - sin * -rows) / scale + shift[0] + templates.brain_center[0]
    y = (sin * columns + cos * -rows) / scale + shift[1] + templates.brain_center[1]
    grid = np.empty((3, slices, size, size), dtype=np.float32)
    grid[0] = x[None]
    grid[1] = y[None]
    grid[2] = z_values[:, None, None]
    return grid


def _lesion(
    rng: np.random.Generator,
    templates: mni_templates.MniTemplates,
    coordinates: np.ndarray,
    cortical: bool = False,
    radius: float | None = None,
    edge: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(tumor weight in 0..1, oedema weight in 0..1), each [slices, size, size]. By default centred
    in deep white matter, radius drawn here, sharp edge; `LesionVariety` sets the three."""
    z_sampled = coordinates[2, :, 0, 0]
    z_low, z_high = np.percentile(z_sampled, [10, 90] if cortical else [25, 80])
    sites = np.argwhere(templates.grey_matter > 0.5) if cortical else np.argwhere(templates.white_matter > 0.6)
    candidates = sites[(sites[:, 2] >= z_low) & (sites[:, 2] <= z_high)]
    center = candidates[rng.integers(len(candidates))].astype(np.float32)
    drawn = np.exp(rng.uniform(np.log(5.0), np.log(30.0)))  # drawn in any case: the stream stays the default's
    radius = drawn if radius is None else radius
    radii = radius * rng.uniform(0.6, 1.4, 3)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    offsets = coordinates.reshape(3, -1).T - center
    scaled = (offsets @ rotation) / radii
    distance = np.linalg.norm(scaled, axis=1)
    # Irregular outline: a few random low-frequency waves on the unit sphere.
    for _ in range(4):
        direction = rng.normal(size=3)
        distance += rng.uniform(0.05, 0.15) * np.sin(scaled @ direction * rng.uniform(1.5, 3.5) + rng.uniform(0, 2 * np.pi))
    distance = distance.reshape(coordinates.shape[1:])
    tumor = np.clip((1.08 - distance) / 0.16, 0.0, 1.0) if edge is None else np.clip(0.5 + (1.0 - distance) / edge, 0.0, 1.0)
    oedema = np.clip((1.5 - distance) / 0.5, 0.0, 1.0)
    return tumor, oedema


def _texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    coarse = rng.normal(1.0, 0.05, (shape[0], max(shape[1] // 16, 2), max(shape[2] // 16, 2)))
    return ndimage.zoom(coarse, (1, shape[1] / coarse.shape[1], shape[2] / coarse.shape[2]), order=3)


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth multiplicative intensity inhomogeneity, about +-20 %."""
    z, v, u = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    coefficients = rng.normal(0.0, 0.08, 6)
    log_field = coefficients @ np.stack([u, v, z, u * v, u * u - 0.33, v * v - 0.33]).reshape(6, -1)
    return np.exp(log_field).reshape(shape)


# Axis orders the synthetic volumes are stored in, one per patient in turn (RAS+ is the canonical one).
VOLUME_ORIENTATIONS = (("L", "P", "S"), ("A", "R", "S"), ("R", "A", "S"), ("P", "L", "I"))


def generate_volume_dataset(
    out_dir: str, patients: int, slices: int, seed: int, image_size: int = 256, family: str = "default"
) -> list[str]:
    """The patients of `generate_dataset` (same family and seed, same anatomy and masks) as BraTS-style
    NIfTI case folders; returns the case ids."""
    import nibabel as nib

    chosen = _family(family)
    _check_sizes(patients, slices, image_size)
    ids = []
    for index in range(patients):
        rng, (images, masks, slice_mm) = chosen.draw(index, seed, slices, image_size)
        # display [z, rows, columns, ...] -> RAS+ [x, y, z, ...]
        canonical = np.stack([volume_grid.canonical_plane(image) for image in images], axis=2)
        labels = np.stack([volume_grid.canonical_plane(mask) for mask in masks], axis=2)
        pixel_mm = chosen.field_of_view_mm / image_size
        affine = np.diag([pixel_mm, pixel_mm, slice_mm, 1.0])
        affine[:3, 3] = -np.array([*canonical.shape[:2], slices]) * affine.diagonal()[:3] / 2
        target = nib.orientations.axcodes2ornt(VOLUME_ORIENTATIONS[index % len(VOLUME_ORIENTATIONS)])
        transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), target)
        stored_affine = _rotation_z(rng.uniform(-6, 6)) @ affine @ nib.orientations.inv_ornt_aff(transform, labels.shape)
        name = chosen.case_id(index, seed)
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        gains = (16.0, 1.0 / 255.0, 16.0)  # T1s: 16-bit integers; FLAIR: floats in 0..1
        for suffix, channel, dtype in (("_t1", 0, np.int16), ("_flair", 1, np.float32), ("_t1ce", 2, np.int16)):
            data = nib.orientations.apply_orientation(canonical[..., channel].astype(np.float32) * gains[channel], transform)
            nib.save(nib.Nifti1Image(data.astype(dtype), stored_affine), os.path.join(folder, f"{name}{suffix}.nii.gz"))
        stored_labels = nib.orientations.apply_orientation(labels, transform).astype(np.uint8)
        nib.save(nib.Nifti1Image(stored_labels, stored_affine), os.path.join(folder, f"{name}_seg.nii.gz"))
        ids.append(name)
    return ids


def _rotation_z(degrees: float) -> np.ndarray:
    """4x4 rotation about the z axis (an oblique acquisition, as far as the reorientation is concerned)."""
    angle = np.deg2rad(degrees)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rotation


@dataclasses.dataclass(frozen=True)
class Family:
    """A synthetic family: how its patients are named and drawn (docs/data.md)."""

    case_id: Callable[[int, int], str]  # (patient index, seed) -> folder name
    # (rng, slices, image size) -> (images uint8 [slices, size, size, 3], masks uint8 0/1 [slices, size, size], slice spacing mm)
    synthesize: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray, float]]
    field_of_view_mm: float
    # patient index -> whether it is drawn with a head (`synthesize(..., with_head=...)`); None: the family has no such choice
    with_head: Callable[[int], bool] | None = None
    variety: LesionVariety | None = None  # `synthesize(..., variety=...)`: the lesions of the `varied` family

    def draw(self, index: int, seed: int, slices: int, image_size: int) -> tuple[np.random.Generator, tuple[np.ndarray, np.ndarray, float]]:
        """(the patient's random stream after drawing, `synthesize`'s result) for patient `index` of `seed`."""
        rng = np.random.default_rng([seed, index])
        options = {} if self.with_head is None else {"with_head": self.with_head(index)}
        if self.variety:
            options["variety"] = self.variety
        return rng, self.synthesize(rng, slices, image_size, **options)


# `default` is what the team tunes on; `heads` holds its patients, every second one with a head
# (core/synthetic_head.py); `varied` is `heads` with `LesionVariety`'s lesions; `unseen` is
# reported once, never tuned on (core/synthetic_unseen.py).
FAMILIES = {
    "default": Family(case_id, _synthesize, FIELD_OF_VIEW_MM),
    "heads": Family(case_id, _synthesize, FIELD_OF_VIEW_MM, with_head=synthetic_head.with_head),
    "varied": Family(case_id, _synthesize, FIELD_OF_VIEW_MM, with_head=synthetic_head.with_head, variety=LesionVariety()),
    "unseen": Family(synthetic_unseen.case_id, synthetic_unseen.synthesize, synthetic_unseen.FIELD_OF_VIEW_MM),
}


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown synthetic family {name!r}, expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]
