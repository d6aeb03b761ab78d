"""Training-step throughput of the networks, input pipeline excluded (pure Keras 3, any backend).

Runs `train_on_batch` on one in-memory batch of synthetic slices and reports
slices per second after warm-up. Works with the TensorFlow backend here and
with `KERAS_BACKEND=jax` on a GPU machine without TensorFlow:

    KERAS_BACKEND=jax python benchmarks/train_step.py --models unet,unetpp --sizes 128,256 --precisions float32,bfloat16
"""

import argparse
import json
import sys
import time

import keras
import numpy as np

from models import losses, networks
from models.config import TrainingConfig


def measure(model_name: str, size: int, precision: str, batch_size: int, steps: int, n_filters: int) -> dict:
    keras.mixed_precision.set_global_policy("float32" if precision == "float32" else f"mixed_{precision}")
    config = TrainingConfig(model=model_name, image_size=size, batch_size=batch_size, n_filters=n_filters, loss="weighted_bce_dice")
    model = networks.build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.make_loss(config.loss, 100.0))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    masks = np.zeros((batch_size, size, size, 1), "float32")
    masks[:, size // 3 : size // 2, size // 3 : size // 2] = 1.0
    for _ in range(3):  # compile and warm up
        model.train_on_batch(images, masks)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(images, masks)
    seconds = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return {
        "backend": keras.backend.backend(),
        "model": model_name,
        "n_filters": n_filters,
        "image_size": size,
        "precision": precision,
        "batch_size": batch_size,
        "steps": steps,
        "slices_per_second": steps * batch_size / seconds,
        "final_loss": float(np.asarray(loss).ravel()[0]),
        "parameters": model.count_params(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="unet")
    parser.add_argument("--sizes", default="128")
    parser.add_argument("--precisions", default="float32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n-filters", type=int, default=16)
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    results = []
    for model_name in args.models.split(","):
        for size in map(int, args.sizes.split(",")):
            for precision in args.precisions.split(","):
                results.append(measure(model_name, size, precision, args.batch_size, args.steps, args.n_filters))
                print(json.dumps(results[-1]), flush=True)
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
