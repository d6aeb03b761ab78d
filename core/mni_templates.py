"""The MNI152 2009 brain templates that ship inside the nilearn wheel (they load offline).

T1, grey matter, white matter and the brain mask at 1 mm, 197 x 233 x 189 voxels.
The T1 is skull-stripped: the templates hold the brain only (down to the medulla
at z = -72 mm), no skull, scalp, orbits or sinuses. Both synthetic families
(`core.synthetic_data`, `core.synthetic_unseen`) sample them.
"""

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class MniTemplates:
    """MNI152 maps, float32 [x, y, z] at 1 mm, values in 0..1."""

    grey_matter: np.ndarray
    white_matter: np.ndarray
    brain: np.ndarray
    brain_center: np.ndarray  # voxel coordinates of the brain's bounding-box center
    brain_z_range: tuple[int, int]
    voxel_of_origin: np.ndarray  # voxel coordinates of MNI (0, 0, 0) mm: voxel = mm + voxel_of_origin


@functools.lru_cache(maxsize=1)
def load() -> MniTemplates:
    """The templates, read once per process (about a second)."""
    from nilearn import datasets  # imported here: slow, and only the generators need it

    def read(loader):
        return loader(resolution=1)

    brain_image = read(datasets.load_mni152_brain_mask)
    brain = np.asarray(brain_image.get_fdata(), dtype=np.float32)
    inside = np.argwhere(brain > 0.5)
    low, high = inside.min(0), inside.max(0)
    return MniTemplates(
        grey_matter=np.asarray(read(datasets.load_mni152_gm_template).get_fdata(), dtype=np.float32),
        white_matter=np.asarray(read(datasets.load_mni152_wm_template).get_fdata(), dtype=np.float32),
        brain=brain,
        brain_center=(low + high) / 2.0,
        brain_z_range=(int(low[2]), int(high[2])),
        voxel_of_origin=-brain_image.affine[:3, 3],
    )
