"""Inference: latency and throughput of the exported SavedModel against calling the Keras model directly.

Both on 256x256 uint8 slices at batch sizes 1, 8 and 32: the SavedModel's
`predict_images` signature (resize to the training size, network, resize the
logits back, sigmoid, threshold) against the same steps around a direct call
of the Keras model compiled as a tf.function. Also the UNet++ heads: the
pruned sub-networks (levels 1..depth) against the full one.
"""

import tempfile

import numpy as np

from benchmarks.common import Timer


def _rate(call, images, repeats: int) -> tuple[float, float]:
    call(images)
    call(images)
    with Timer() as timer:
        for _ in range(repeats):
            call(images)
    latency = timer.seconds / repeats
    return latency * 1000 / len(images), len(images) / latency


def run(image_size: int, batch_sizes: list[int], repeats: int, n_filters: int) -> list[dict]:
    import tensorflow as tf

    from models import networks, unetpp
    from models.config import TrainingConfig
    from models.export import export_serving_model

    config = TrainingConfig(image_size=image_size, n_filters=n_filters)
    model = networks.build_model(config)
    directory = tempfile.mkdtemp()
    export_serving_model(model, config, directory)
    signature = tf.saved_model.load(directory).signatures["predict_images"]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def keras_direct(images):
        resized = tf.image.resize(tf.cast(images, tf.float32), [image_size, image_size], method="area")
        logits = tf.image.resize(model(resized, training=False), tf.shape(images)[1:3])
        probabilities = tf.sigmoid(logits[..., 0])
        return probabilities, tf.cast(probabilities > 0.5, tf.uint8)

    results = []
    rng = np.random.default_rng(0)
    for batch in batch_sizes:
        images = tf.constant(rng.integers(0, 255, (batch, 256, 256, 3), dtype=np.uint8))
        for name, call in (
            ("SavedModel predict_images", lambda x: signature(images=x)["mask"].numpy()),
            ("Keras model, direct call", lambda x: keras_direct(x)[1].numpy()),
        ):
            milliseconds, rate = _rate(call, images, repeats)
            results.append(
                {
                    "benchmark": "inference",
                    "variant": f"UNet-{n_filters} {name}",
                    "batch_size": batch,
                    "ms_per_slice": milliseconds,
                    "slices_per_second": rate,
                }
            )
            print(results[-1], flush=True)

    full = networks.build_model(TrainingConfig(model="unetpp", deep_supervision=True, image_size=image_size, n_filters=n_filters))
    images = tf.constant(rng.uniform(0, 255, (8, image_size, image_size, 3)), tf.float32)
    for level in range(1, config.depth + 1):
        head = tf.function(unetpp.pruned(full, level))
        milliseconds, rate = _rate(lambda x, head=head: head(x).numpy(), images, repeats)
        results.append(
            {
                "benchmark": "inference",
                "variant": f"UNet++-{n_filters} pruned to level {level}" + (" (full)" if level == config.depth else ""),
                "batch_size": 8,
                "image_size": image_size,
                "ms_per_slice": milliseconds,
                "slices_per_second": rate,
                "parameters": unetpp.pruned(full, level).count_params(),
            }
        )
        print(results[-1], flush=True)
    return results
