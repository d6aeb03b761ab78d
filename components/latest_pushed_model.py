"""LatestPushedModel: the currently served model, read from the Pusher's destination.

Open-source Kubeflow Pipelines does not run TFX Resolver nodes (its compiler
answers "resolver executors not implemented"), so on that target the
Evaluator's baseline and the Trainer's warm start come from this component
instead of a Resolver with LatestBlessedModelStrategy. The Pusher pushes
exactly the blessed models, so "latest pushed" and "latest blessed" are the
same model and both variants decide the same way.

The newest numeric version folder under `push_destination` is copied into the
output Model artifact (`<uri>/Format-Serving`, the layout the Trainer writes).
With nothing pushed yet, the output is a copy of `fallback` when one is given
(the candidate itself: every change threshold then passes, as TFMA does
without a baseline), and otherwise an empty artifact that the Trainer skips.
"""

import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from core.contracts import SERVING_SUBDIR, versions_newest_first


def latest_version_dir(push_destination: str) -> str | None:
    """The newest `<push_destination>/<version>` holding a saved_model.pb, or None."""
    if not tf.io.gfile.isdir(push_destination):
        return None
    for version in versions_newest_first(tf.io.gfile.listdir(push_destination)):
        candidate = os.path.join(push_destination, version)
        if tf.io.gfile.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return None


def copy_tree(source: str, destination: str) -> None:
    """Recursive copy that works on local paths and gs:// alike."""
    for folder, _, files in tf.io.gfile.walk(source):
        target = os.path.join(destination, os.path.relpath(folder, source))
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)


@tfx.dsl.components.component
def LatestPushedModel(  # noqa: N802
    model: tfx.dsl.components.OutputArtifact[standard_artifacts.Model],
    push_destination: tfx.dsl.components.Parameter[str],
    fallback: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
) -> None:
    latest = latest_version_dir(push_destination)
    if latest is not None:
        copy_tree(latest, os.path.join(model.uri, SERVING_SUBDIR))
    elif fallback is not None:
        copy_tree(os.path.join(fallback.uri, SERVING_SUBDIR), os.path.join(model.uri, SERVING_SUBDIR))
    else:
        tf.io.gfile.makedirs(model.uri)
