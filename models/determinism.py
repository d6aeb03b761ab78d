"""Bit-identical training for a seed (`--deterministic`).

On a CPU, TensorFlow's kernels split their sums over the threads of its
pools, and the order of the additions changes from run to run: two trainings
of one seed drift apart from the first step (docs/models.md, "Reproducibility").
One thread per pool fixes that order; op determinism makes the GPU kernels
(cuDNN among them) choose deterministic algorithms. TensorFlow reads its pool
sizes once, when its runtime starts, so `unet4mri run` and the Kubeflow
entrypoint call `use_one_thread` before anything runs an operation, and
`make_deterministic` (called by the training) fails clearly when that was missed.
"""

import tensorflow as tf

TOO_LATE = (
    "deterministic training needs TensorFlow on one thread, and its thread pools are fixed when it runs its first "
    "operation, which this process already did: call models.determinism.use_one_thread() before anything else "
    "(`unet4mri run --deterministic` does)"
)


def use_one_thread() -> None:
    """Give TensorFlow's intra-op and inter-op pools one thread each; RuntimeError (TOO_LATE) once its runtime has started otherwise."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as error:
        raise RuntimeError(TOO_LATE) from error


def make_deterministic() -> None:
    """One thread per pool (`use_one_thread`) and deterministic kernels (`tf.config.experimental.enable_op_determinism`)."""
    use_one_thread()
    tf.config.experimental.enable_op_determinism()
