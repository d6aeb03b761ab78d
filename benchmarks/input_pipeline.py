"""Input pipeline: the Trainer's tf.data pipeline alone against the notebook way and the model's appetite.

- tf.data: `models.input_pipeline.training_dataset` (GZIP TFRecords -> parse,
  decode, resize, cache, oversample, shuffle, batch), iterated without a
  model, after one warm-up pass that fills the cache (augmentation is part of
  the training step, on the accelerator, since issue 16);
- keras.utils.PyDataset (the notebook's Sequence): per batch, read the TIFF
  pairs from disk with tifffile, resize, flip, stack;
- the UNet-16 training step alone at the same size (benchmarks.train_step),
  with and without the on-device augmentation, timed in alternating blocks.
"""

import os
import time

import numpy as np

from benchmarks.common import Timer


def _examples(data_dir: str, work_dir: str) -> str:
    from benchmarks.ingestion import naive_ingestion

    out = os.path.join(work_dir, "records")
    if not os.path.isdir(out):
        naive_ingestion(data_dir, out)
    return os.path.join(out, "*.tfrecord.gz")


def tf_data_rate(pattern: str, image_size: int, batch_size: int, batches: int) -> float:
    from models import input_pipeline
    from models.config import TrainingConfig

    config = TrainingConfig(image_size=image_size, batch_size=batch_size)
    iterator = iter(input_pipeline.training_dataset([pattern], config))
    slices, _ = input_pipeline.count_slices([pattern])
    for _ in range(slices // batch_size + 2):  # one pass fills the cache of decoded slices
        next(iterator)
    with Timer() as timer:
        for _ in range(batches):
            next(iterator)
    return batches * batch_size / timer.seconds


def sequence_rate(data_dir: str, image_size: int, batch_size: int, batches: int) -> float:
    import keras
    import tensorflow as tf

    from core import slices

    pairs = slices.find_slice_pairs(data_dir)

    class SliceSequence(keras.utils.PyDataset):
        def __len__(self):
            return len(pairs) // batch_size

        def __getitem__(self, index):
            images, masks = [], []
            for pair in pairs[index * batch_size : (index + 1) * batch_size]:
                image, mask = slices.read_pair(pair)
                if np.random.rand() < 0.5:
                    image, mask = image[:, ::-1], mask[:, ::-1]
                images.append(image)
                masks.append(mask[..., None])
            images = tf.image.resize(np.stack(images).astype("float32"), [image_size, image_size]).numpy()
            masks = (tf.image.resize(np.stack(masks).astype("float32"), [image_size, image_size]).numpy() > 0.5).astype("float32")
            return images, masks

    sequence = SliceSequence()
    sequence[0]
    start = time.perf_counter()
    for index in range(batches):
        sequence[index % len(sequence)]
    return batches * batch_size / (time.perf_counter() - start)


def run(work_dir: str, data_dir: str, image_size: int, batch_size: int, batches: int, train_steps: int) -> list[dict]:
    from benchmarks.train_step import measure_augmentation_cost

    pattern = _examples(data_dir, work_dir)
    step = measure_augmentation_cost("unet", image_size, "float32", batch_size, train_steps, 16)
    rates = {
        "tf.data training pipeline (decode, cache, sample, batch)": tf_data_rate(pattern, image_size, batch_size, batches),
        "keras PyDataset reading TIFFs, flips only (notebook)": sequence_rate(data_dir, image_size, batch_size, batches),
        "UNet-16 training step, no augmentation": step["plain_slices_per_second"],
        "UNet-16 training step with on-device augmentation (consumer)": step["augmented_slices_per_second"],
    }
    results = [
        {"benchmark": "input_pipeline", "variant": name, "image_size": image_size, "batch_size": batch_size, "slices_per_second": rate}
        for name, rate in rates.items()
    ]
    results[-1].update({key: value for key, value in step.items() if key.startswith("augmentation_") or key == "device"})
    for result in results:
        print(result, flush=True)
    return results
