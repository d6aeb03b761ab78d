"""Pusher executor that never pushes the served model again.

The Evaluator compares each candidate with the served model. When a rerun
reuses a cached Trainer, the candidate *is* the served model, it is blessed
against itself, and TFX's Pusher would copy it once more under a new version.
This executor recognizes a candidate whose files are byte-identical to the
newest pushed version, records that version as the push, and copies nothing.
"""

import hashlib
import os

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.latest_pushed_model import latest_version_dir


def tree_digest(folder: str) -> str:
    """SHA-256 over the relative paths and contents of every file below `folder`."""
    digest = hashlib.sha256()
    for root, _, files in sorted(tf.io.gfile.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with tf.io.gfile.GFile(path, "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()


class Executor(tfx_pusher.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        if self.CheckBlessing(input_dict):
            destination = pusher_pb2.PushDestination()
            proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
            served = latest_version_dir(destination.filesystem.base_directory) if destination.HasField("filesystem") else None
            if served and tree_digest(served) == tree_digest(self.GetModelPath(input_dict)):
                model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                self._MarkPushed(model_push, pushed_destination=served, pushed_version=os.path.basename(served))
                return
        super().Do(input_dict, output_dict, exec_properties)
