"""Draw what the training-time augmentation does to a few slices, as one PNG.

Columns: slices of one patient. Rows: the slice as read (at the training size),
the default augmentation, with background structures, with synthetic lesions,
and the mask after the synthetic lesions (bright: tumor). The augmented rows use
one seed, so they share the flips, rotations and intensity draws (an option's
draws come after those). RGB shows the three MR sequences (pre-contrast,
FLAIR, post-contrast); the picture is stored with a 256-colour palette.

    .venv/bin/python scripts/augmentation_examples.py --data-dir data/synthetic --output docs/augmentation.png
"""

import argparse

import numpy as np
from PIL import Image

from core import slices

ROWS = ("as read", "default augmentation", "--background-structures 1", "--synthetic-lesions 1", "mask after the lesions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/synthetic")
    parser.add_argument("--output", default="docs/augmentation.png")
    parser.add_argument("--case", default=None, help="case id (default: the first case with a tumor)")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--size", type=int, default=128, help="training size (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from models.augmentation import SliceAugmentation

    images, masks = _read_case(args.data_dir, args.case, args.columns, args.size)
    rows = [images]
    for options in ({}, {"background_structures": 1.0}, {"synthetic_lesions": 1.0}):
        augmented, augmented_masks = SliceAugmentation(seed=args.seed, **options)(images, masks, training=True)
        rows.append(keras.ops.convert_to_numpy(augmented))
    rows.append(np.repeat(keras.ops.convert_to_numpy(augmented_masks), 3, axis=-1) * 255.0)
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).quantize(256).save(args.output, optimize=True)
    print(f"wrote {args.output}: rows {', '.join(ROWS)}")
    return 0


def _read_case(data_dir: str, case: str | None, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 images [count, size, size, 3] (0..255) and masks [count, size, size, 1] (0/1): evenly spaced slices."""
    pairs = slices.find_slice_pairs(data_dir)
    if case is None:
        case = next(pair.case_id for pair in pairs if slices.read_mask(pair.mask_path).any())
    pairs = sorted((pair for pair in pairs if pair.case_id == case), key=lambda pair: pair.slice_index)
    if not pairs:
        raise SystemExit(f"no slices of case {case!r} in {data_dir}")
    chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, count + 2).round().astype(int)[1:-1]]
    images = np.stack([np.asarray(Image.fromarray(slices.read_image(p.image_path)).resize((size, size), Image.BILINEAR)) for p in chosen])
    masks = np.stack([np.asarray(Image.fromarray(slices.read_mask(p.mask_path)).resize((size, size), Image.NEAREST)) for p in chosen])
    return images.astype(np.float32), (masks[..., None] > 0).astype(np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
