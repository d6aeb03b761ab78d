"""Training: slices/s and achieved GFLOP/s of UNet and UNet++ steps, next to this machine's convolution throughput.

- FLOPs are counted from the model's graph: TensorFlow's profiler on the
  frozen forward pass (2 FLOPs per multiply-add); a training step is counted
  as 3x the forward pass (the backward pass computes two gradients per layer,
  each as costly as the forward one), the usual estimate.
- The hardware reference is measured in the same run: forward and backward of
  one 3x3 convolution, 64 -> 64 channels on 128x128, the UNet's dominant
  operation, in a compiled tf.function.
"""

import numpy as np

from benchmarks.common import Timer
from benchmarks.train_step import measure


def forward_flops(model, image_size: int) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda images: model(images, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(tf.TensorSpec([1, image_size, image_size, 3], tf.float32)))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options)
    return profile.total_float_ops


def convolution_gflops(batch: int = 16, size: int = 128, channels: int = 64, steps: int = 10) -> float:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.standard_normal((batch, size, size, channels)), tf.float32)
    kernel = tf.Variable(rng.standard_normal((3, 3, channels, channels)) * 0.05, dtype=tf.float32)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(images)
            out = tf.nn.conv2d(images, kernel, 1, "SAME")
            loss = tf.reduce_mean(out)
        kernel_grad, image_grad = tape.gradient(loss, [kernel, images])
        return tf.reduce_sum(kernel_grad) + tf.reduce_sum(image_grad)

    forward_backward().numpy()
    with Timer() as timer:
        for _ in range(steps):
            forward_backward().numpy()
    flops = 3 * 2 * batch * size * size * channels * channels * 9
    return flops * steps / timer.seconds / 1e9


def run(models: list[str], image_size: int, batch_size: int, steps: int, n_filters: int) -> list[dict]:
    from models import networks
    from models.config import TrainingConfig

    reference = convolution_gflops()
    results = [
        {"benchmark": "training", "variant": "3x3 conv 64->64, forward+backward (hardware reference)", "gflops_per_second": reference}
    ]
    print(results[-1], flush=True)
    for model_name in models:
        step = measure(model_name, image_size, "float32", batch_size, steps, n_filters)
        config = TrainingConfig(model=model_name, image_size=image_size, n_filters=n_filters)
        flops = 3 * forward_flops(networks.build_model(config), image_size)
        achieved = step["slices_per_second"] * flops / 1e9
        results.append(
            {
                "benchmark": "training",
                "variant": f"{model_name}-{n_filters} training step",
                "image_size": image_size,
                "batch_size": batch_size,
                "slices_per_second": step["slices_per_second"],
                "gflop_per_slice": flops / 1e9,
                "gflops_per_second": achieved,
                "fraction_of_reference": achieved / reference,
            }
        )
        print(results[-1], flush=True)
    return results
