"""From a volume to the model's slices and back: display orientation, the square grid, intensities.

Display orientation: an axial slice of a RAS+ volume (`data[:, :, k]`, axes
[x, y]) is shown as the kaggle_3m slices are, radiologically: rows from
anterior to posterior, columns from the patient's right to left (image left
is patient right). `display_plane` / `canonical_plane` convert.

The grid: slices are resampled to a square grid of `size` x `size` pixels
(256, the size of kaggle_3m slices and the curated schema's) that covers the
slice's field of view, the longer of its two physical sides, centred, with
square pixels of `pixel_mm` = field of view / size (the shorter side is padded
with background). Images are resampled linearly, masks linearly then
thresholded at 0.5; predictions come back to the native grid the same way
(`SliceGrid.from_grid`), so masks are measured at native resolution.

Intensities: per volume and contrast, the 0.5th and 99.5th percentiles of the
non-zero voxels (the head; background is 0 in skull-stripped and most raw
scans) map linearly to 0 and 255, clipped, as uint8; zero voxels stay 0.
16-bit and float scans are scaled alike.
"""

import dataclasses

import numpy as np
from scipy import ndimage

GRID_SIZE = 256
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


def display_plane(plane: np.ndarray) -> np.ndarray:
    """[x, y, ...] of a RAS+ axial slice -> [rows (anterior to posterior), columns (right to left), ...]."""
    return np.flip(np.swapaxes(plane, 0, 1), (0, 1))


def canonical_plane(plane: np.ndarray) -> np.ndarray:
    """The inverse of `display_plane`: [rows, columns, ...] -> [x, y, ...]."""
    return np.swapaxes(np.flip(plane, (0, 1)), 0, 1)


def normalize_intensities(volume: np.ndarray) -> np.ndarray:
    """float [x, y, z] of one contrast -> uint8 of the same shape (percentile scaling, see the module docstring)."""
    head = volume[volume != 0]
    if head.size == 0:
        return np.zeros(volume.shape, np.uint8)
    low, high = np.percentile(head, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high <= low:  # a constant head: all of it at full intensity
        return np.where(volume != 0, 255, 0).astype(np.uint8)
    scaled = np.clip((volume - low) * (255.0 / (high - low)), 0.0, 255.0)
    scaled[volume == 0] = 0.0
    return np.rint(scaled).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class SliceGrid:
    """How a native axial slice of `rows` x `columns` pixels (display orientation) of
    `row_mm` x `column_mm` maps to the square grid of `size` pixels."""

    rows: int
    columns: int
    row_mm: float
    column_mm: float
    size: int = GRID_SIZE

    def __post_init__(self):
        if min(self.rows, self.columns, self.size) < 1 or min(self.row_mm, self.column_mm) <= 0:
            raise ValueError(f"a slice grid needs positive sizes and spacings, got {self}")

    @property
    def field_of_view_mm(self) -> float:
        return max(self.rows * self.row_mm, self.columns * self.column_mm)

    @property
    def pixel_mm(self) -> float:
        """Side of a grid pixel in mm."""
        return self.field_of_view_mm / self.size

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """native (row, column) = scale * grid (row, column) + offset, pixel centres aligned physically."""
        native_mm = np.array([self.row_mm, self.column_mm])
        extent = np.array([self.rows, self.columns]) * native_mm
        scale = self.pixel_mm / native_mm
        offset = (0.5 * self.pixel_mm - self.field_of_view_mm / 2 + extent / 2) / native_mm - 0.5
        return scale, offset

    def to_grid(self, plane: np.ndarray) -> np.ndarray:
        """float [rows, columns] or [rows, columns, C] -> float32 [size, size(, C)], linear, background 0."""
        scale, offset = self._scale_offset()
        channels = plane[..., None] if plane.ndim == 2 else plane
        out = np.stack(
            [
                ndimage.affine_transform(
                    channels[..., c].astype(np.float32), np.diag(scale), offset, output_shape=(self.size, self.size), order=1, cval=0.0
                )
                for c in range(channels.shape[-1])
            ],
            axis=-1,
        )
        return out[..., 0] if plane.ndim == 2 else out

    def from_grid(self, plane: np.ndarray) -> np.ndarray:
        """float [size, size] (e.g. probabilities) -> float32 [rows, columns], linear."""
        scale, offset = self._scale_offset()
        return ndimage.affine_transform(
            plane.astype(np.float32), np.diag(1.0 / scale), -offset / scale, output_shape=(self.rows, self.columns), order=1, mode="nearest"
        )


def slice_grid(shape: tuple[int, ...], spacing_mm: tuple[float, ...], size: int = GRID_SIZE) -> SliceGrid:
    """The grid of the axial slices of a RAS+ volume of `shape` [x, y, z, ...] and `spacing_mm` (x, y, z):
    display rows run along y, columns along x."""
    return SliceGrid(rows=int(shape[1]), columns=int(shape[0]), row_mm=float(spacing_mm[1]), column_mm=float(spacing_mm[0]), size=size)


def grid_slices(images: np.ndarray, spacing_mm: tuple[float, ...], size: int = GRID_SIZE) -> tuple[np.ndarray, SliceGrid]:
    """images float [x, y, z, 3] RAS+ (one volume per channel) -> (uint8 [z, size, size, 3] in display
    orientation, normalized per channel over the whole volume; the grid)."""
    grid = slice_grid(images.shape, spacing_mm, size)
    normalized = np.stack([normalize_intensities(images[..., c]) for c in range(images.shape[-1])], axis=-1)
    out = np.empty((images.shape[2], size, size, images.shape[-1]), np.uint8)
    for k in range(images.shape[2]):
        out[k] = np.clip(np.rint(grid.to_grid(display_plane(normalized[:, :, k].astype(np.float32)))), 0, 255)
    return out, grid


def grid_masks(mask: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """uint8 0/1 [x, y, z] RAS+ -> uint8 0/1 [z, size, size] in display orientation."""
    return np.stack([grid.to_grid(display_plane(mask[:, :, k].astype(np.float32))) > 0.5 for k in range(mask.shape[2])]).astype(np.uint8)


def native_volume(grid_probabilities: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """float [z, size, size] display-orientation probabilities -> float32 [x, y, z] RAS+ at native resolution."""
    return np.stack([canonical_plane(grid.from_grid(plane)) for plane in grid_probabilities], axis=-1)
