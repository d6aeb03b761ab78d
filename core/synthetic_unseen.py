"""The `unseen` synthetic family: patients the default family's tuning never saw.

Generalization is measured on it, never tuned on it: tune on the default
family's eval patients, then report this family once (docs/data.md).

What differs from the default family (`core.synthetic_data`), each drawn per
patient from `np.random.default_rng([seed, index])`:

- **Anatomy.** No other brain or head volume ships offline in the installed
  packages (nilearn's wheel holds only the MNI152 2009 brain templates, and its
  fsaverage5 meshes are low-resolution cortex surfaces without cerebellum or
  brainstem), so the brain is the same MNI152 template, reshaped: a smooth
  random non-linear displacement field (2.5-5 mm RMS on a 40 mm control grid),
  an asymmetric central enlargement (ventriculomegaly, up to 35 %), a per-axis
  scale (+-10 %), a sampling plane tilted up to 15 degrees about the left-right
  axis (the default only rotates in-plane) and a 230 mm field of view (default
  180 mm). Around the brain it adds what a real head has and the
  skull-stripped template lacks: extra-axial CSF, skull (cortical bone and
  fatty diploe), scalp (skin, subcutaneous fat, muscle), and, at the inferior
  slices, eyes, orbital fat, optic nerves, ethmoid, sphenoid and maxillary
  sinuses with mucosal thickening, the nasal cavity, the clivus, petrous bones
  and mastoid air cells. Several of these are bright on FLAIR (fat, mucosa, CSF
  inflow artefact at the skull base) and look like lesions.
- **Coverage.** Slices run from the skull base (-62 to -48 mm, through the
  orbits and maxillary sinuses) to above the vertex, where the default stays
  within the brain's top and bottom 2-10 %.
- **Lesions.** Either 2-5 small metastasis-like lesions (radius 2.5-14 mm)
  at the cortex or grey-white junction anywhere in the brain, cerebellum
  included, ring-enhancing with a necrotic core when over 5 mm, with vasogenic
  oedema; or one elongated infiltrative lesion (semi-axes 25-50 mm and
  8-20 mm) that follows the white matter, with an occasional small satellite.
  The default draws one or two ellipsoidal lesions (radius 5-30 mm) in the
  white matter of the middle slices.
- **Intensities, like another scanner.** Other tissue contrasts (lower grey /
  white contrast on pre-contrast, CSF not fully nulled on FLAIR), a stronger
  bias field with a receive-coil shape (bright periphery, +-35 %), true Rician
  noise (sigma 2-5 % of white matter), and per-channel auto-windowing (the
  head's 99.5th percentile maps to 215-255, then a gamma of 0.85-1.15), where
  the default applies a fixed per-channel gain.

Images, masks and the NIfTI volumes are written by `core.synthetic_data`, in the
same layouts as the default family; case ids start with `UNS_` (default: `SYN_`).
"""

import functools

import numpy as np
from scipy import ndimage

from core import mni_templates

FIELD_OF_VIEW_MM = 230.0
CASE_PREFIX = "UNS"
# Tissue intensities on a 0..1 scale per channel (pre-contrast, FLAIR, post-contrast).
_TISSUE_INTENSITY = {
    "white_matter": (0.62, 0.40, 0.68),
    "grey_matter": (0.50, 0.58, 0.52),
    "csf": (0.12, 0.20, 0.14),  # FLAIR's CSF not fully nulled
    "fat": (0.95, 0.78, 0.92),  # no fat saturation: bright on every sequence
    "marrow": (0.75, 0.55, 0.78),
    "bone": (0.05, 0.04, 0.05),
    "muscle": (0.38, 0.30, 0.46),
    "skin": (0.55, 0.45, 0.60),
    "vitreous": (0.10, 0.16, 0.12),
    "lens": (0.60, 0.30, 0.60),
    "nerve": (0.55, 0.50, 0.55),
    "mucosa": (0.35, 0.72, 0.66),  # inflamed sinus mucosa: FLAIR-bright, enhancing
    "air": (0.0, 0.0, 0.0),
}
# The head model's grid: 2 mm voxels over this box of MNI millimetres.
_HEAD_GRID_ORIGIN_MM = np.array([-100.0, -130.0, -110.0])
_HEAD_GRID_SHAPE = (101, 129, 106)
_HEAD_GRID_MM = 2.0
_FLAIR_ONLY = np.array([0.0, 1.0, 0.0], dtype=np.float32)
_OEDEMA_CHANGE = np.array([-0.05, 0.18, 0.0], dtype=np.float32)  # vasogenic oedema: T1 down, FLAIR up


def case_id(patient_index: int, seed: int) -> str:
    """Folder name of an unseen-family patient: `UNS_<site>_<seed>_<index>`, never a default id."""
    site = ("TA", "TB", "TC")[patient_index % 3]
    return f"{CASE_PREFIX}_{site}_{seed % 10000:04d}_{patient_index:04d}"


def synthesize(rng: np.random.Generator, slices: int, image_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One patient: images uint8 [slices, size, size, 3], masks uint8 [slices, size, size] in 0/1,
    and the distance between slices in mm."""
    images, masks, slice_mm, _ = render(rng, slices, image_size)
    return images, masks, slice_mm


def render(rng: np.random.Generator, slices: int, image_size: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """`synthesize`, and the brain weight in 0..1, float32 [slices, size, size] (0 on skull, scalp, orbits...)."""
    templates = mni_templates.load()
    points, slice_mm = _sampling_points(rng, slices, image_size)
    voxels = points + templates.voxel_of_origin[:, None, None, None].astype(np.float32)
    grey, white, brain = (
        ndimage.map_coordinates(volume, voxels, order=1, mode="constant")
        for volume in (templates.grey_matter, templates.white_matter, templates.brain)
    )
    csf = np.clip(brain - grey - white, 0.0, 1.0)
    contrast = {name: (np.array(value) * rng.normal(1.0, 0.07, 3)).astype(np.float32) for name, value in _TISSUE_INTENSITY.items()}
    # CSF inflow artefact: FLAIR's CSF brightens towards the skull base (basal cisterns, fourth ventricle).
    inflow = rng.uniform(0.0, 2.0) * np.clip((-15.0 - points[2]) / 30.0, 0.0, 1.0)
    tissue = white[..., None] * contrast["white_matter"] + grey[..., None] * contrast["grey_matter"]
    tissue += csf[..., None] * contrast["csf"] * (1.0 + inflow[..., None] * _FLAIR_ONLY)
    head = _head(rng, points, contrast, inflow)
    signal = tissue + (1.0 - brain[..., None]) * head
    lesions = _lesions(rng, points, white, contrast)
    for _, _, oedema in lesions:
        signal *= 1.0 + oedema[..., None] * brain[..., None] * _OEDEMA_CHANGE
    lesion = np.zeros_like(brain)
    for weight, colour, _ in lesions:
        weight = weight * brain
        signal = signal * (1.0 - weight[..., None]) + weight[..., None] * colour
        lesion = np.maximum(lesion, weight)
    signal *= (_texture(rng, brain.shape) * _coil_bias_field(rng, points))[..., None]
    noise_sigma = rng.uniform(0.02, 0.05) * contrast["white_matter"][0]
    real, imaginary = (rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(noise_sigma) for _ in range(2))
    signal = np.hypot(signal + real, imaginary)  # magnitude of complex Gaussian noise: Rician
    images = _auto_window(rng, signal)
    return images, (lesion > 0.5).astype(np.uint8), slice_mm, brain


def _sampling_points(rng: np.random.Generator, slices: int, size: int) -> tuple[np.ndarray, float]:
    """MNI millimetres float32 [3, slices, size, size] of every output pixel, and the slice spacing in mm.

    Computed on a grid 8 times coarser in-plane and interpolated: the transform is smooth.
    """
    z_low, z_high = rng.uniform(-62, -48), rng.uniform(72, 88)
    heights = np.linspace(z_low, z_high, slices)
    slice_mm = float(heights[1] - heights[0]) if slices > 1 else 1.0
    coarse = max(size // 8, 2) + 1
    millimetres = (np.linspace(0, size - 1, coarse) - (size - 1) / 2.0) * (FIELD_OF_VIEW_MM / size)
    rows, columns = np.meshgrid(millimetres, millimetres, indexing="ij")
    center = np.array([0.0, -17.0, 5.0])
    # Radiological display: image right is patient left (+x), image top is anterior (+y).
    local = np.stack(np.broadcast_arrays(columns[None], -rows[None], heights[:, None, None] - center[2]))
    angle, pitch = np.deg2rad(rng.uniform(-12, 12)), np.deg2rad(rng.uniform(-15, 15))
    in_plane = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    scale = rng.uniform(0.9, 1.1, 3)
    shift = rng.uniform([-8, -8, -4], [8, 8, 4])
    points = np.einsum("ij,j...->i...", tilt @ in_plane, local) / scale[:, None, None, None]
    points += (center + shift)[:, None, None, None]
    points = _central_enlargement(rng, _random_warp(rng, points))
    points = _upsample(points.astype(np.float32), size, order=1)
    return points.astype(np.float32), slice_mm


def _random_warp(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """A smooth non-linear deformation: cubic B-spline displacements on a 40 mm control grid, 2.5-5 mm RMS."""
    spacing = 40.0
    control = rng.normal(0.0, rng.uniform(2.5, 5.0), (3, 6, 7, 6))
    indices = (points - _HEAD_GRID_ORIGIN_MM[:, None, None, None]) / spacing
    return points + np.stack([ndimage.map_coordinates(component, indices, order=3, mode="nearest") for component in control])


def _central_enlargement(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """Ventricles and deep structures enlarged by up to 35 %, around a center off the midline (asymmetric)."""
    center = rng.uniform([-6, -14, 12], [6, -6, 20])[:, None, None, None]
    strength = rng.uniform(0.1, 0.35)
    offsets = points - center
    squared = (offsets**2).sum(0)
    return center + offsets * (1.0 - strength * np.exp(-squared / (2 * 22.0**2)))


@functools.lru_cache(maxsize=1)
def _head_distances() -> tuple[np.ndarray, np.ndarray]:
    """The head model on a 2 mm grid: (distance outside the cranial cavity, depth below the skin), mm, float32.

    The cranial cavity is the brain mask smoothed and closed; the head is the cavity
    grown by 13 mm (skull and scalp) joined with two ellipsoids, face and skull base.
    """
    templates = mni_templates.load()
    axes = [_HEAD_GRID_ORIGIN_MM[i] + _HEAD_GRID_MM * np.arange(n) for i, n in enumerate(_HEAD_GRID_SHAPE)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    voxels = grid + templates.voxel_of_origin[:, None, None, None].astype(np.float32)
    brain = ndimage.map_coordinates(templates.brain, voxels, order=1, mode="constant")
    cavity = ndimage.binary_fill_holes(ndimage.gaussian_filter(brain, 2.0) > 0.2)
    outside_cavity = ndimage.distance_transform_edt(~cavity) * _HEAD_GRID_MM
    face = _ellipsoid(grid, (0, 42, -62), (62, 52, 46)) > 0.5
    skull_base = _ellipsoid(grid, (0, -30, -85), (58, 68, 45)) > 0.5
    head = ndimage.gaussian_filter(((outside_cavity <= 13) | face | skull_base).astype(np.float32), 1.5) > 0.5
    depth = ndimage.distance_transform_edt(ndimage.binary_fill_holes(head)) * _HEAD_GRID_MM
    return outside_cavity.astype(np.float32), depth.astype(np.float32)


def _ellipsoid(points: np.ndarray, center, axes) -> np.ndarray:
    """Weight in 0..1 of an ellipsoid (MNI mm) at `points` [3, ...], with a soft edge about 1 mm wide."""
    center, axes = np.asarray(center, np.float32), np.asarray(axes, np.float32)
    radius = np.sqrt(sum(((points[i] - center[i]) / axes[i]) ** 2 for i in range(3)))
    return np.clip((1.0 - radius) * axes.min() + 0.5, 0.0, 1.0)


def _tube(points: np.ndarray, start, end, start_radius: float, end_radius: float) -> np.ndarray:
    """Weight in 0..1 of a tapered tube (a cone when one radius is small) from `start` to `end`, mm."""
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    direction = end - start
    along = np.clip(sum((points[i] - start[i]) * direction[i] for i in range(3)) / (direction @ direction), 0.0, 1.0)
    distance = np.sqrt(sum((points[i] - start[i] - along * direction[i]) ** 2 for i in range(3)))
    return np.clip(start_radius + (end_radius - start_radius) * along - distance + 0.5, 0.0, 1.0)


def _head(rng: np.random.Generator, points: np.ndarray, contrast: dict, inflow: np.ndarray) -> np.ndarray:
    """Colour float [slices, size, size, 3] of everything but the brain: CSF, skull, scalp, skull base."""
    outside_cavity, depth = (
        ndimage.map_coordinates(volume, (points - _HEAD_GRID_ORIGIN_MM[:, None, None, None]) / _HEAD_GRID_MM, order=1, mode="nearest")
        for volume in _head_distances()
    )
    skull_mm, fat_mm = rng.uniform(4, 8), rng.uniform(2, 6)
    inside = np.clip(depth, 0.0, 1.0)
    colour = inside[..., None] * contrast["muscle"]

    def paint(weight: np.ndarray, tissue: np.ndarray) -> None:
        colour[...] += weight[..., None] * (tissue - colour)

    paint(inside * np.clip(1.8 - depth, 0, 1), contrast["skin"])
    paint(np.clip(depth - 1.5, 0, 1) * np.clip(fat_mm + 1.5 - depth, 0, 1), contrast["fat"])
    paint(inside * np.clip(outside_cavity, 0, 1) * np.clip(skull_mm - outside_cavity, 0, 1), contrast["bone"])
    paint(inside * np.clip(1 - np.abs(outside_cavity - skull_mm / 2) / (skull_mm / 4), 0, 1), contrast["marrow"])
    csf = contrast["csf"] * (1.0 + inflow[..., None] * _FLAIR_ONLY)
    colour[...] += np.clip(1.0 - outside_cavity, 0, 1)[..., None] * (csf - colour)
    low = np.flatnonzero(points[2].min(axis=(1, 2)) < -15.0)  # slices that reach the skull base
    if len(low):
        low_colour = colour[low]
        _paint_skull_base(rng, points[:, low], inside[low], contrast, low_colour)
        colour[low] = low_colour
    return colour


def _paint_skull_base(rng: np.random.Generator, points: np.ndarray, inside: np.ndarray, contrast: dict, colour: np.ndarray) -> None:
    """Orbits, sinuses, nasal cavity, clivus, petrous bones and mastoids, painted into `colour` in place.

    Positions are MNI millimetres, approximate (the templates hold no skull base); nothing is
    painted outside the head (`inside`, 0..1).
    """

    def paint(weight: np.ndarray, tissue: np.ndarray) -> None:
        where = weight > 0  # most structures are small: update only their pixels
        colour[where] += (weight[where] * inside[where])[:, None] * (tissue - colour[where])

    def sinus(center, axes, air_fraction: float) -> None:
        paint(_ellipsoid(points, center, axes), contrast["mucosa"])  # the lining, thickened by air_fraction < 1
        paint(_ellipsoid(points, center, np.asarray(axes) * air_fraction), contrast["air"])

    vitreous = contrast["vitreous"] * np.array([1.0, rng.uniform(0.6, 2.5), 1.0])  # FLAIR: incomplete nulling
    paint(_tube(points, (0, 12, -36), (0, -8, -75), 7, 7), contrast["marrow"])  # clivus
    for side in (-1, 1):
        eye = np.array([side * 32, 60, -42]) + rng.normal(0, 1.5, 3)
        eye_radius = rng.uniform(11, 12.5)
        apex = (side * 13, 22, -36)
        paint(_tube(points, apex, eye - [0, 4, 0], 3, 15), contrast["fat"])  # orbital fat cone
        paint(_tube(points, apex, eye, 1.8, 2.5), contrast["nerve"])
        paint(_ellipsoid(points, eye, [eye_radius] * 3), vitreous)
        paint(_ellipsoid(points, eye + [0, eye_radius - 2.5, 0], (4.5, 2, 4.5)), contrast["lens"])
        sinus((side * 30, 48, -70), (13, 17, 17), rng.uniform(0.5, 0.95))  # maxillary
        paint(_tube(points, (side * 18, -8, -40), (side * 45, -30, -44), 5, 7), contrast["bone"])  # petrous ridge
        mastoid = _ellipsoid(points, (side * 43, -32, -52), (8, 10, 10))
        paint(mastoid, contrast["bone"])
        cells = np.sin(points[0] / 2.5) * np.sin(points[1] / 2.5) * np.sin(points[2] / 2.5) > -0.2
        paint(mastoid * cells, contrast["air"])
    sinus((0, 48, -40), (11, 20, 13), rng.uniform(0.4, 0.9))  # ethmoid
    sinus((0, 18, -42), (13, 11, 10), rng.uniform(0.3, 0.95))  # sphenoid
    paint(_ellipsoid(points, (0, 62, -68), (9, 26, 20)), contrast["air"])  # nasal cavity
    for side in (-1, 1):
        for height in (-62, -73):
            paint(_ellipsoid(points, (side * 6, 60, height), (3, 20, 4)), contrast["mucosa"])  # turbinates


@functools.lru_cache(maxsize=1)
def _lesion_sites() -> tuple[np.ndarray, np.ndarray]:
    """Candidate lesion centers, MNI mm: (cortex and grey-white junction, deep white matter), each [n, 3]."""
    templates = mni_templates.load()
    cortex = np.argwhere(templates.grey_matter[::2, ::2, ::2] > 0.5) * 2 - templates.voxel_of_origin
    white = np.argwhere(templates.white_matter[::2, ::2, ::2] > 0.6) * 2 - templates.voxel_of_origin
    return cortex.astype(np.float32), white.astype(np.float32)


def _lesions(rng: np.random.Generator, points: np.ndarray, white: np.ndarray, contrast: dict) -> list:
    """[(weight in 0..1, colour [3], oedema weight in 0..1)], weights [slices, size, size]; later ones paint over."""
    cortex, deep_white = _lesion_sites()
    z_column = points[2, :, points.shape[2] // 2, points.shape[3] // 2]
    z_low, z_high = z_column.min() + 5, z_column.max() - 5

    def site(candidates: np.ndarray) -> np.ndarray:
        inside = candidates[(candidates[:, 2] >= z_low) & (candidates[:, 2] <= z_high)]
        return inside[rng.integers(len(inside))]

    grey = contrast["grey_matter"]
    lesions = []
    metastatic = rng.random() < 0.55
    for _ in range(rng.integers(2, 6) if metastatic else int(rng.random() < 0.4)):
        radius = np.exp(rng.uniform(np.log(2.5), np.log(14.0)))
        distance = _distance(rng, points, site(cortex), radius * rng.uniform(0.8, 1.2, 3), waves=2, wave_amplitude=0.08)
        enhancing = metastatic and rng.random() < 0.8
        solid = [
            grey[0] * rng.uniform(0.8, 0.95),
            grey[1] + rng.uniform(0.1, 0.35),
            grey[2] * (rng.uniform(1.3, 1.8) if enhancing else 1.0),
        ]
        lesions.append((np.clip((1.05 - distance) / 0.12, 0, 1), np.array(solid, np.float32), np.clip((2.2 - distance) / 1.0, 0, 1)))
        if enhancing and radius > 5:  # ring enhancement: a necrotic core inside the enhancing rim
            core = [contrast["csf"][0] * 1.6, grey[1] + rng.uniform(0.0, 0.2), contrast["csf"][2] * 1.6]
            lesions.append((np.clip((0.6 - distance) / 0.12, 0, 1), np.array(core, np.float32), np.zeros_like(distance)))
    if not metastatic:
        radii = np.array([rng.uniform(25, 50), rng.uniform(8, 20), rng.uniform(8, 20)])
        distance = _distance(rng, points, site(deep_white), radii, waves=3, wave_amplitude=0.15)
        weight = np.clip((1.1 - distance) / 0.25, 0, 1) * np.clip(0.5 + white, 0, 1)  # spreads along white matter
        colour = [grey[0] * rng.uniform(0.8, 0.95), grey[1] + rng.uniform(0.08, 0.3), grey[2] * rng.uniform(0.9, 1.05)]
        lesions.insert(0, (weight, np.array(colour, np.float32), 0.5 * np.clip((1.6 - distance) / 0.5, 0, 1)))
    return lesions


def _distance(
    rng: np.random.Generator, points: np.ndarray, center: np.ndarray, radii: np.ndarray, waves: int, wave_amplitude: float
) -> np.ndarray:
    """Normalized distance [slices, size, size] to a randomly oriented ellipsoid with a wavy outline (1 on it).

    Computed only on the slices within 2.5 radii of the center; elsewhere it is 10 (far outside).
    """
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0].astype(np.float32)
    reach = 2.5 * radii.max()
    heights = points[2].reshape(points.shape[1], -1)
    near = np.flatnonzero((heights.min(1) <= center[2] + reach) & (heights.max(1) >= center[2] - reach))
    offsets = points[:, near] - center[:, None, None, None].astype(np.float32)
    scaled = np.einsum("ij,i...->j...", rotation, offsets) / radii[:, None, None, None].astype(np.float32)
    near_distance = np.sqrt((scaled**2).sum(0))
    for _ in range(waves):
        direction = rng.normal(size=3).astype(np.float32)
        phase = np.einsum("i,i...->...", direction, scaled) * np.float32(rng.uniform(1.5, 3.5)) + np.float32(rng.uniform(0, 2 * np.pi))
        near_distance += np.float32(rng.uniform(0.5, 1.0) * wave_amplitude) * np.sin(phase)
    distance = np.full(points.shape[1:], 10.0, dtype=np.float32)
    distance[near] = near_distance
    return distance


def _texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A finer multiplicative texture than the default family's, +-4 %."""
    coarse = rng.normal(1.0, 0.04, (shape[0], max(shape[1] // 8, 2), max(shape[2] // 8, 2))).astype(np.float32)
    return _upsample(coarse, shape[1], order=3)


def _upsample(planes: np.ndarray, size: int, order: int) -> np.ndarray:
    """[..., n, n] -> [..., size, size], corners aligned (like `ndimage.zoom`), as two small matrix products."""
    matrix = _interpolation_matrix(planes.shape[-1], size, order)
    return matrix @ planes @ matrix.T


@functools.lru_cache(maxsize=8)
def _interpolation_matrix(coarse: int, size: int, order: int) -> np.ndarray:
    """float32 [size, coarse]: spline interpolation is linear, so zooming the identity gives its matrix."""
    return ndimage.zoom(np.eye(coarse), (size / coarse, 1), order=order).astype(np.float32)


def _coil_bias_field(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """A receive-coil inhomogeneity: periphery brighter than the center, plus a gradient; about +-35 %."""
    x, y, z = points[0] / 90.0, (points[1] + 17.0) / 110.0, points[2] / 80.0
    gradient = rng.normal(0.0, 0.12, 3)
    log_field = rng.uniform(0.2, 0.45) * (x * x + y * y - 0.5) + gradient[0] * x + gradient[1] * y + gradient[2] * z
    return np.exp(log_field)


def _auto_window(rng: np.random.Generator, signal: np.ndarray) -> np.ndarray:
    """uint8 [..., 3]: per channel, the 99.5th percentile of the head maps to 215-255, then a gamma of 0.85-1.15."""
    images = np.empty(signal.shape, dtype=np.uint8)
    for channel in range(3):
        values = signal[..., channel]
        sample = values.ravel()[::7]
        top = max(float(np.percentile(sample[sample > 0.05], 99.5)) if (sample > 0.05).any() else 1.0, 1e-3)
        windowed = rng.uniform(215, 255) * np.clip(values / top, 0.0, None) ** rng.uniform(0.85, 1.15)
        images[..., channel] = np.clip(windowed, 0, 255).astype(np.uint8)
    return images
