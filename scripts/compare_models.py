"""Compare UNet and UNet++ with several losses on the same patient split.

Runs the pipeline once per variant with one pipeline root, so ingestion,
validation and the class weight are computed once (cached) and every variant
is trained on the same train patients, early-stopped on the same eval patients
and evaluated by TFMA on the same test patients. Prints a Markdown table and
writes the numbers as JSON.

    .venv/bin/python scripts/compare_models.py --data-dir data/synthetic --output-dir output/compare --epochs 12
"""

import argparse
import dataclasses
import json
import os
import sys

from unet4mri import quiet

VARIANTS = [(model, loss) for model in ("unet", "unetpp") for loss in ("bce", "weighted_bce", "dice", "focal_tversky")]


def _parse_variant(text: str) -> tuple[str, str, dict]:
    """ "unet:dice+image_size=256+patch_size=96" -> ("unet", "dice", {"image_size": 256, "patch_size": 96})."""
    head, *pairs = text.split("+")
    model, loss = head.split(":")
    return model, loss, {key: json.loads(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/synthetic")
    parser.add_argument("--output-dir", default="output/compare")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated model:loss pairs, each optionally with +option=value training options, "
        "e.g. unet:weighted_bce_dice+image_size=256+patch_size=96 (default: all 8)",
    )
    args = parser.parse_args(argv)
    quiet.configure()

    from models.config import TrainingConfig
    from pipeline.config import PipelineConfig
    from pipeline.local_runner import run_local

    variants = [_parse_variant(v) for v in args.variants.split(",")] if args.variants else [(m, loss, {}) for m, loss in VARIANTS]
    # No blessing: this compares models, it does not serve one.
    base = PipelineConfig(data_dir=os.path.abspath(args.data_dir), output_dir=os.path.abspath(args.output_dir), min_tumor_slice_dice=1.0)
    rows = []
    for model, loss, options in variants:
        training = TrainingConfig(**{"model": model, "loss": loss, "epochs": args.epochs, "image_size": args.image_size, **options})
        summary = run_local(dataclasses.replace(base, training=training))
        trainer = next(run for run in summary.components if run.component == "Trainer")
        overall = summary.metrics_by_slice.get("overall", {})
        small = summary.metrics_by_slice.get("small", {})
        rows.append(
            {
                "model": model,
                "loss": loss,
                "options": options,
                "dice_per_patient_mean": overall.get("dice_per_patient_mean"),
                "dice_per_tumor_slice_mean": overall.get("dice_per_tumor_slice_mean"),
                "small_dice_per_tumor_slice_mean": small.get("dice_per_tumor_slice_mean"),
                "empty_slice_fp_rate": overall.get("empty_slice_fp_rate"),
                "trainer_seconds": trainer.seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    with open(os.path.join(args.output_dir, "comparison.json"), "w") as out:
        json.dump(rows, out, indent=2)
    print(
        "| model | loss | options | per-patient Dice | per-tumor-slice Dice | small-tumor slice Dice | empty-slice FP rate | Trainer time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['loss']} | {row['options'] or ''} "
            f"| {row['dice_per_patient_mean']:.3f} | {row['dice_per_tumor_slice_mean']:.3f} "
            f"| {row['small_dice_per_tumor_slice_mean']:.3f} | {row['empty_slice_fp_rate']:.3f} | {row['trainer_seconds']:.0f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
