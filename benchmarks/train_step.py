"""Training-step throughput of the networks, input pipeline excluded (pure Keras 3, any backend).

Runs `train_on_batch` of the Trainer's model (models.training_model: the
network, with the on-device augmentation when on) on one in-memory batch of
synthetic slices and reports slices per second after warm-up; `--augment
both` times the step with and without augmentation in alternating blocks in
one process and reports the augmentation's cost as a share of the plain step.
Works with the TensorFlow backend here and with `KERAS_BACKEND=jax` on a GPU
machine without TensorFlow:

    KERAS_BACKEND=jax python -m benchmarks.train_step --models unet,unetpp --sizes 128,256 --precisions float32,bfloat16
    KERAS_BACKEND=jax python -m benchmarks.train_step --sizes 256 --precisions float32,bfloat16 --augment both
"""

import argparse
import json
import sys
import time

import keras
import numpy as np

from models import losses, networks
from models.config import TrainingConfig
from models.training_model import IMAGES, MASKS, training_model


def _trainer(model_name: str, size: int, batch_size: int, n_filters: int, augment: bool) -> tuple[keras.Model, dict]:
    """A compiled training model and one batch {IMAGES, MASKS} of synthetic slices."""
    config = TrainingConfig(model=model_name, image_size=size, batch_size=batch_size, n_filters=n_filters, loss="weighted_bce_dice")
    network = networks.build_model(config)
    model = training_model(network, augment, seed=0)
    loss = losses.make_loss(config.loss, 100.0)
    heads = len(network.outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=[loss] * heads if heads > 1 else loss)
    rng = np.random.default_rng(0)
    masks = np.zeros((batch_size, size, size, 1), "float32")
    masks[:, size // 3 : size // 2, size // 3 : size // 2] = 1.0
    batch = {IMAGES: rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32"), MASKS: masks}
    for _ in range(3):  # compile and warm up
        model.train_on_batch(batch)
    return model, batch


def _seconds(model: keras.Model, batch: dict, steps: int, cpu: bool = False) -> tuple[float, float]:
    """(wall-clock seconds, or with `cpu` this process's CPU seconds over all threads, of `steps` steps; the last loss)."""
    clock = time.process_time if cpu else time.perf_counter
    start = clock()
    for _ in range(steps):
        loss = model.train_on_batch(batch)
    return clock() - start, float(np.asarray(loss).ravel()[0])


def _set_precision(precision: str) -> None:
    keras.mixed_precision.set_global_policy("float32" if precision == "float32" else f"mixed_{precision}")


def measure_augmentation_cost(
    model_name: str, size: int, precision: str, batch_size: int, steps: int, n_filters: int, repeats: int = 5
) -> dict:
    """The step with and without on-device augmentation, timed in `repeats` alternating blocks of
    `steps` steps (so that a busy machine slows both alike); cost = augmented / plain time - 1,
    the median over the blocks, with its range. Wall-clock time, and on the CPU backend also the
    process's CPU time (all threads), which other processes on a shared machine disturb less."""
    _set_precision(precision)
    plain, batch = _trainer(model_name, size, batch_size, n_filters, augment=False)
    augmented, _ = _trainer(model_name, size, batch_size, n_filters, augment=True)
    plain_seconds, augmented_seconds, plain_cpu, augmented_cpu = [], [], [], []
    for _ in range(repeats):
        plain_seconds.append(_seconds(plain, batch, steps)[0])
        augmented_seconds.append(_seconds(augmented, batch, steps)[0])
        plain_cpu.append(_seconds(plain, batch, steps, cpu=True)[0])
        augmented_cpu.append(_seconds(augmented, batch, steps, cpu=True)[0])
    _set_precision("float32")
    costs = sorted(a / p - 1.0 for a, p in zip(augmented_seconds, plain_seconds))
    cpu_costs = sorted(a / p - 1.0 for a, p in zip(augmented_cpu, plain_cpu))
    return {
        "backend": keras.backend.backend(),
        "device": _device(),
        "model": model_name,
        "n_filters": n_filters,
        "image_size": size,
        "precision": precision,
        "batch_size": batch_size,
        "steps": steps * repeats,
        "plain_slices_per_second": steps * batch_size / float(np.median(plain_seconds)),
        "augmented_slices_per_second": steps * batch_size / float(np.median(augmented_seconds)),
        "augmentation_cost": float(np.median(costs)),
        "augmentation_cost_range": [costs[0], costs[-1]],
        "augmentation_cpu_time_cost": float(np.median(cpu_costs)),
        "augmentation_cpu_time_cost_range": [cpu_costs[0], cpu_costs[-1]],
    }


def _device() -> str:
    """The accelerator the step ran on, or "cpu"."""
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu") if gpus else "cpu"


def measure(model_name: str, size: int, precision: str, batch_size: int, steps: int, n_filters: int, augment: bool = False) -> dict:
    _set_precision(precision)
    model, batch = _trainer(model_name, size, batch_size, n_filters, augment)
    seconds, loss = _seconds(model, batch, steps)
    _set_precision("float32")
    return {
        "backend": keras.backend.backend(),
        "model": model_name,
        "n_filters": n_filters,
        "image_size": size,
        "precision": precision,
        "batch_size": batch_size,
        "steps": steps,
        "slices_per_second": steps * batch_size / seconds,
        "augment": augment,
        "final_loss": loss,
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
    parser.add_argument("--augment", choices=("off", "on", "both"), default="off", help="both: the augmentation's cost per step")
    parser.add_argument("--repeats", type=int, default=5, help="--augment both: alternating blocks of --steps steps")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    results = []
    for model_name in args.models.split(","):
        for size in map(int, args.sizes.split(",")):
            for precision in args.precisions.split(","):
                if args.augment == "both":
                    results.append(
                        measure_augmentation_cost(model_name, size, precision, args.batch_size, args.steps, args.n_filters, args.repeats)
                    )
                else:
                    results.append(measure(model_name, size, precision, args.batch_size, args.steps, args.n_filters, args.augment == "on"))
                print(json.dumps(results[-1]), flush=True)
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
