"""A head around the default family's skull-stripped brain, with contrasts drawn anew per patient.

Scans as users have them (kaggle_3m among them) show the whole head: CSF around the
brain, skull, scalp and, at the lowest slices, orbits, sinuses, nasal cavity and the
bones of the skull base, several of them as bright on FLAIR as a lesion. A model that
only ever saw a skull-stripped brain on a dark background paints tumor there. The
`heads` family is the default family's patients with every second one (`with_head`)
given such a head: data the team can measure that failure on without touching the
unseen family (docs/data.md). Training on it cost sensitivity (docs/results.md), so
the embedded data stays skull-stripped.

The head is built in MNI millimetres on a 2 mm grid from the distance outside the
template's brain mask (CSF, then the skull's cortical bone with its diploë, then scalp
muscle and fat) and, below the frontal lobes, from ellipsoids at approximate anatomical
positions, each moved by a few millimetres and resized per patient. Every tissue's
brightness in each channel is drawn per patient from a wide range (fat, marrow and
sinus mucosa reach lesion-like FLAIR values), so that brightness alone never separates
a lesion from the head around the brain. Its design is the team's own and differs from
the unseen family's (`core.synthetic_unseen`), which stays a held-out check.
"""

import functools

import numpy as np
from scipy import ndimage

from core import mni_templates

_GRID_MM = 2.0

# Per-patient brightness ranges, 0..1 per channel (pre-contrast T1, FLAIR, post-contrast T1).
_TISSUE_RANGE = {
    "muscle": ([0.28, 0.20, 0.30], [0.45, 0.42, 0.55]),
    "fat": ([0.75, 0.40, 0.70], [1.00, 0.85, 1.00]),
    "bone": ([0.00, 0.00, 0.00], [0.08, 0.08, 0.08]),
    "marrow": ([0.50, 0.30, 0.50], [0.90, 0.75, 0.90]),
    "vitreous": ([0.08, 0.04, 0.08], [0.25, 0.30, 0.25]),
    "air": ([0.00, 0.00, 0.00], [0.03, 0.03, 0.03]),
    "mucosa": ([0.25, 0.45, 0.40], [0.50, 1.00, 0.95]),
}

# Skull-base structures: (tissue, centre, radii) in MNI mm; paired ones at +-x. Later entries paint over earlier ones.
_ORBITAL_FAT = ("fat", (30, 36, -34), (15, 22, 14))
_GLOBE = ("vitreous", (32, 50, -34), (11.5, 11.5, 11.5))
_PETROUS_BONE = ("bone", (32, -18, -38), (20, 8, 7))
_CLIVUS = ("marrow", (0, -4, -42), (8, 9, 16))
_SINUSES = {  # name: (centre, radii, probability the patient has it)
    "ethmoid": ((0, 38, -30), (9, 18, 11), 1.0),
    "sphenoid": ((0, 12, -32), (13, 11, 10), 1.0),
    "frontal": ((0, 64, 2), (14, 7, 10), 0.7),
    "nasal cavity": ((0, 55, -55), (7, 24, 16), 1.0),
    "maxillary": ((27, 42, -58), (14, 17, 17), 1.0),
    "mastoid": ((50, -24, -42), (10, 12, 11), 1.0),
}
_PAIRED = {"maxillary", "mastoid"}


def with_head(patient_index: int) -> bool:
    """Whether the `heads` family draws this patient with a head: every second one, so any dataset of
    two or more patients holds both kinds in equal shares (within one)."""
    return patient_index % 2 == 1


@functools.lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """(MNI mm of every grid point [3, ...], distance outside the brain mask in mm [...]), float32."""
    templates = mni_templates.load()
    brain = templates.brain[::2, ::2, ::2] > 0.5
    axes = [np.arange(n, dtype=np.float32) * _GRID_MM - templates.voxel_of_origin[i] for i, n in enumerate(brain.shape)]
    millimetres = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    return millimetres, (ndimage.distance_transform_edt(~brain) * _GRID_MM).astype(np.float32)


def _radius(millimetres: np.ndarray, centre, radii) -> np.ndarray:
    """Normalized ellipsoid radius (< 1 inside) at every grid point."""
    return np.sqrt(sum(((millimetres[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))


def colour(rng: np.random.Generator, coordinates: np.ndarray, csf: np.ndarray) -> np.ndarray:
    """The head's colour float [slices, size, size, 3] at template voxel `coordinates` [3, slices, size, size].

    `csf` is the patient's CSF colour [3]. Inside the brain mask the colour is CSF; the
    caller weights this by (1 - brain).
    """
    millimetres, outside = _grid()
    tissue = {name: rng.uniform(low, high).astype(np.float32) for name, (low, high) in _TISSUE_RANGE.items()}
    tissue["csf"] = np.asarray(csf, np.float32)
    csf_mm, bone_mm, scalp_mm = rng.uniform(1.5, 4.0), rng.uniform(5.0, 9.0), rng.uniform(4.0, 9.0)
    face_radius = np.minimum(  # the face, and the soft tissue between it and the posterior fossa
        _radius(millimetres, (0, 38, -48) + rng.uniform(-4, 4, 3), np.array([56, 52, 36]) * rng.uniform(0.9, 1.1, 3)),
        _radius(millimetres, (0, -12, -66) + rng.uniform(-4, 4, 3), np.array([54, 58, 34]) * rng.uniform(0.9, 1.1, 3)),
    )
    vault = outside < csf_mm + bone_mm + scalp_mm
    names = ["", *tissue]
    code = {name: np.int8(index) for index, name in enumerate(names)}
    labels = np.zeros(outside.shape, np.int8)
    labels[vault | (face_radius < 1)] = code["muscle"]
    labels[vault & (face_radius >= 1) & (outside > csf_mm + bone_mm + 0.4 * scalp_mm)] = code["fat"]
    labels[(face_radius < 1) & (face_radius > 0.92)] = code["fat"]
    labels[outside < csf_mm + bone_mm] = code["bone"]
    labels[np.abs(outside - csf_mm - bone_mm / 2) < bone_mm / 5] = code["marrow"]

    def structure(name: str, centre, radii) -> np.ndarray:
        inside = _radius(millimetres, np.asarray(centre) + rng.uniform(-3, 3, 3), np.asarray(radii) * rng.uniform(0.85, 1.15, 3))
        labels[(inside < 1) & (outside >= csf_mm)] = code[name]
        return inside

    for side in (-1, 1):
        for name, (x, y, z), radii in (_ORBITAL_FAT, _GLOBE, _PETROUS_BONE):
            structure(name, (side * x, y, z), radii)
    structure(*_CLIVUS)
    for sinus, (centre, radii, probability) in _SINUSES.items():
        if rng.random() >= probability:
            continue
        mucosa_mm = rng.uniform(0.0, 10.0) if rng.random() < 0.85 else np.inf  # inf: filled with fluid
        for side in (-1, 1) if sinus in _PAIRED else (1,):
            inside = structure("mucosa", (side * centre[0], *centre[1:]), radii)
            labels[(inside < 1 - mucosa_mm / min(radii)) & (outside >= csf_mm)] = code["air"]
    labels[outside < csf_mm] = code["csf"]

    volume = np.zeros(outside.shape + (3,), np.float32)
    for name, value in tissue.items():
        volume[labels == code[name]] = value
    points = coordinates / _GRID_MM
    return np.stack(
        [ndimage.map_coordinates(ndimage.gaussian_filter(volume[..., c], 0.6), points, order=1, mode="constant") for c in range(3)],
        axis=-1,
    )
