"""Process set-up for the command line: one Keras, and the stack's noise silenced.

Must run before TensorFlow is imported. Keras 3 is the project's Keras:
`TF_USE_LEGACY_KERAS=0` keeps tensorflow_transform (imported by `tfx.v1`)
from switching `tf.keras` to tf_keras.
"""

import logging
import os
import re
import sys
import time
import warnings

_PROGRESS = re.compile(r"^Component (\S+) is (running|finished)\.")


class _ComponentProgress(logging.Filter):
    """Lets through errors and LocalDagRunner's component start/end lines, rewritten with durations."""

    def __init__(self):
        super().__init__()
        self._started: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        match = _PROGRESS.match(record.getMessage())
        if not match:
            return False
        component, event = match.groups()
        if event == "running":
            self._started[component] = time.monotonic()
            record.msg, record.args = "%s: started", (component,)
        else:
            seconds = time.monotonic() - self._started.pop(component, time.monotonic())
            record.msg, record.args = "%s: finished in %.1f s", (component, seconds)
        return True


def configure(verbose: bool = False) -> None:
    """Choose Keras 3 and, unless verbose, silence TensorFlow, Beam, absl and the warnings of the stack."""
    os.environ["TF_USE_LEGACY_KERAS"] = "0"
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in ("tensorflow", "apache_beam", "tensorflow_model_analysis", "tfx_bsl", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    handler.addFilter(_ComponentProgress())
    absl_logger = logging.getLogger("absl")
    absl_logger.handlers = [handler]
    absl_logger.propagate = False
    absl_logger.setLevel(logging.INFO)
    # Libraries inside the Trainer and Evaluator call absl.logging.set_verbosity(WARNING),
    # which would hide the progress lines; the filter above already decides what is shown.
    absl_logger.setLevel = lambda level: None
