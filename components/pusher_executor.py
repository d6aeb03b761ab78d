"""Pusher executor: an atomic push that never pushes the served model again.

- Atomic: TFX's Pusher copies the model file by file into
  `<base_directory>/<version>/`, where a model server polling the folder (or a
  crash mid-copy) can see half a model. This executor copies into a hidden
  `.<version>.partial/` folder beside it and renames it into place, so a
  version folder is either absent or complete; leftovers of a killed push are
  removed by the next push. (Atomic on local and POSIX filesystems; object
  stores such as gs:// have no folder rename and keep TFX's copy, which writes
  saved_model.pb last.)
- No re-push: when a rerun reuses a cached Trainer, the candidate *is* the
  served model, it is blessed against itself, and TFX's Pusher would copy it
  once more under a new version. A candidate whose files are byte-identical to
  the newest pushed version is recorded as that push, and nothing is copied.
"""

import hashlib
import os
import shutil
import time

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.latest_pushed_model import latest_version_dir

PARTIAL_SUFFIX = ".partial"


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


def push_atomically(model_dir: str, base_directory: str) -> str:
    """Copy `model_dir` to `<base_directory>/<version>` (a new Unix-time version) by copy-then-rename; returns the version folder."""
    os.makedirs(base_directory, exist_ok=True)
    for name in os.listdir(base_directory):  # left by a push that was killed
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
            shutil.rmtree(os.path.join(base_directory, name), ignore_errors=True)
    version = int(time.time())
    while os.path.exists(os.path.join(base_directory, str(version))):
        version += 1
    staging = os.path.join(base_directory, f".{version}{PARTIAL_SUFFIX}")
    shutil.copytree(model_dir, staging)
    destination = os.path.join(base_directory, str(version))
    os.rename(staging, destination)
    return destination


class Executor(tfx_pusher.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        """Push the model if blessed: atomically, and never the served model again.

        Args:
          input_dict:
            - model: one `Model` artifact (the SavedModel under SERVING_SUBDIR).
            - model_blessing: one `ModelBlessing` artifact; nothing is pushed
              unless its `blessed` custom property is 1.
          output_dict:
            - pushed_model: one `PushedModel` artifact; custom properties
              `pushed` (0 or 1), `pushed_destination` (the version folder) and
              `pushed_version`. An identical re-push records the served version
              and copies nothing.
          exec_properties:
            - push_destination: JSON of a `PushDestination`; a local
              `filesystem.base_directory` is pushed to atomically, other
              destinations by TFX's Pusher.
        """
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory if destination.HasField("filesystem") else None
        if not self.CheckBlessing(input_dict) or not base_directory:
            super().Do(input_dict, output_dict, exec_properties)
            return
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        model_dir = self.GetModelPath(input_dict)
        served = latest_version_dir(base_directory)
        if served and tree_digest(served) == tree_digest(model_dir):
            self._MarkPushed(model_push, pushed_destination=served, pushed_version=os.path.basename(served))
            return
        if "://" in base_directory:
            super().Do(input_dict, output_dict, exec_properties)
            return
        pushed = push_atomically(model_dir, base_directory)
        io_utils.copy_dir(model_dir, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=pushed, pushed_version=os.path.basename(pushed))
