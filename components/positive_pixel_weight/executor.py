"""The component's logic: a Beam job over the split's masks."""

import json
import os
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.positive_pixel_weight import spec
from core.contracts import HYPERPARAMETERS_FILE, POSITIVE_PIXEL_WEIGHT
from data_schema import features


class EmptyClassError(ValueError):
    """The split has no tumor pixels (or no background), so no weight exists."""


def mask_pixel_counts(serialized: bytes) -> np.ndarray:
    """[positive, negative] pixel counts of one serialized example's mask."""
    example = tf.train.Example.FromString(serialized)
    mask = np.frombuffer(example.features.feature[features.MASK].bytes_list.value[0], dtype=np.uint8)
    positive = int(np.count_nonzero(mask))
    return np.array([positive, mask.size - positive], dtype=np.int64)


def weight_statistics(positive: int, negative: int) -> dict[str, Any]:
    if positive == 0 or negative == 0:
        raise EmptyClassError(f"cannot weight classes: the split has {positive} tumor and {negative} background pixels")
    return {
        POSITIVE_PIXEL_WEIGHT: negative / positive,
        "positive_pixels": positive,
        "negative_pixels": negative,
        "positive_fraction": positive / (positive + negative),
    }


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        """Count the tumor and background pixels of one split and write the weight.

        Args:
          input_dict:
            - examples (spec.EXAMPLES_KEY): one `Examples` artifact with the split.
          output_dict:
            - hyperparameters (spec.HYPERPARAMETERS_KEY): one `HyperParameters`
              artifact holding HYPERPARAMETERS_FILE, JSON with POSITIVE_PIXEL_WEIGHT
              (negative / positive pixels), the two counts and the positive fraction.
          exec_properties:
            - split (spec.SPLIT_KEY): the split to count, e.g. "train".

        Raises:
          EmptyClassError: the split has no tumor pixel or no background pixel.
        """
        split = exec_properties[spec.SPLIT_KEY]
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        split_dir = artifact_utils.get_split_uri([examples], split)
        output_dir = artifact_utils.get_single_uri(output_dict[spec.HYPERPARAMETERS_KEY])
        counts_prefix = os.path.join(output_dir, "counts")
        with self._make_beam_pipeline() as pipeline:
            _ = (
                pipeline
                | "ReadExamples" >> beam.io.ReadFromTFRecord(os.path.join(split_dir, "*"))
                | "CountPixels" >> beam.Map(mask_pixel_counts)
                | "Sum" >> beam.CombineGlobally(lambda counts: np.sum(list(counts), axis=0) if counts else np.zeros(2, np.int64))
                | "Format" >> beam.Map(lambda total: json.dumps([int(total[0]), int(total[1])]))
                | "Write" >> beam.io.WriteToText(counts_prefix, shard_name_template="")
            )
        with tf.io.gfile.GFile(counts_prefix) as counts_file:
            positive, negative = json.loads(counts_file.read())
        tf.io.gfile.remove(counts_prefix)
        statistics = weight_statistics(positive, negative)
        # The Trainer requires exactly one file in a HyperParameters artifact.
        with tf.io.gfile.GFile(os.path.join(output_dir, HYPERPARAMETERS_FILE), "w") as out:
            json.dump(statistics, out, indent=2)
