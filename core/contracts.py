"""Names that one part writes and another reads, defined once.

Each constant here is a contract between a producer and its consumers; both
sides import it from this module, so renaming one side alone is impossible.

The exported SavedModel (written by `models.export`; read by the TFMA
Evaluator, `unet4mri evaluate`, `unet4mri predict` and the report):
  SERVING_SIGNATURE    `examples` string [batch] serialized tf.Examples -> outputs
  IMAGES_SIGNATURE     `images` uint8 [batch, height, width, 3 (2K + 1)] -> outputs
  IMAGES_TTA_SIGNATURE the same with flip test-time augmentation (4 network passes)
  outputs              PROBABILITIES float32 [batch, height, width] and
                       MASK_OUTPUT uint8 [batch, height, width] in 0/1
                       (`mask` is the post-processed mask: core.postprocessing)
  MODEL_INFO_DIR/MODEL_INFO_FILE  JSON {"context_slices": K, "image_size": S,
                       "postprocessing": the spec the signatures apply
                       (core.postprocessing.PostProcessing.to_dict; absent in
                       older models: the default), "postprocessing_choice":
                       how the trainer chose it on the eval patients
                       (core.postprocessing.Choice.to_dict; absent when not chosen)}

Artifacts inside the pipeline:
  SERVING_SUBDIR       a Model artifact's SavedModel folder (TFX's layout)
  HISTORY_FILE         the Trainer's per-epoch metrics, in its ModelRun artifact
  POSTPROCESSING_FILE  the Trainer's choice of post-processing (Choice.to_dict), beside it
  HYPERPARAMETERS_FILE the PositivePixelWeight output, a JSON holding POSITIVE_PIXEL_WEIGHT
  REJECTED_FILE        the slices ingestion refused, a CSV in the Examples artifact
  MIN_PATIENTS_PER_SPLIT  ingestion gives every split at least this many patients
                       when the data has enough for all; the run summary names a
                       split below it

Pushed models: `<push destination>/<version>/`, one folder per push named by
an increasing integer; the newest complete one is the one being served
(`versions_newest_first`).
"""

from collections.abc import Iterable

from data_schema import features

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
IMAGES_TTA_SIGNATURE = "predict_images_tta"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
PROBABILITIES = "probabilities"
MASK_OUTPUT = "mask"

MODEL_INFO_DIR = "assets.extra"
MODEL_INFO_FILE = "unet4mri.json"
INFO_CONTEXT_SLICES = "context_slices"
INFO_IMAGE_SIZE = "image_size"
INFO_POSTPROCESSING = "postprocessing"
INFO_POSTPROCESSING_CHOICE = "postprocessing_choice"

SERVING_SUBDIR = "Format-Serving"
HISTORY_FILE = "history.json"
POSTPROCESSING_FILE = "postprocessing.json"
HYPERPARAMETERS_FILE = "positive_pixel_weight.json"
POSITIVE_PIXEL_WEIGHT = "positive_pixel_weight"
REJECTED_FILE = "rejected.csv"
MIN_PATIENTS_PER_SPLIT = 3

OVERALL = "overall"
# The order in which tables and charts list the evaluation slices.
REPORTED_SLICES = (OVERALL, features.BUCKET_SMALL, features.BUCKET_MEDIUM, features.BUCKET_LARGE, features.BUCKET_NONE)


def versions_newest_first(names: Iterable[str]) -> list[str]:
    """The version folder names among `names` (a listing of a push destination),
    newest first; other entries are ignored. A trailing '/' (GCS listings) is dropped."""
    versions = [name.rstrip("/") for name in names if name.rstrip("/").isdigit()]
    return sorted(versions, key=int, reverse=True)
