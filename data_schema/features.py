"""Feature names and tumor-size buckets, defined once.

Ingestion writes these features, the trainer and the evaluator read them, and
`schema.pbtxt` beside this module describes them for TFDV.

Layout of one `tf.train.Example` (one MRI slice):
  image:             bytes, raw uint8 [height, width, 3], channels pre-contrast, FLAIR, post-contrast
  mask:              bytes, raw uint8 [height, width], 0 background / 1 tumor
  case_id:           bytes, the patient folder name (the split key)
  slice_index:       int64, the slice number n of `<case>_<n>.tif` (1-based); for a volume, the
                     axial slice's position from inferior to superior (1-based)
  tumor_pixels:      int64, number of tumor pixels in the mask at native size (a volume's: on
                     the 256 x 256 grid its slices are resampled to)
  tumor_size_bucket: bytes, one of TUMOR_SIZE_BUCKETS
  height, width:     int64, native slice size in pixels
  tumor_pixel_fraction: float, tumor_pixels / (height * width)
  context:           bytes, only with context slices K > 0: raw uint8 [height, width, 6K], the
                     images of slices n-K..n-1 then n+1..n+K of the same case, 3 channels
                     each (at the volume's ends the nearest existing slice is repeated)
  pixel_spacing_mm:  float, side of a (square) pixel in mm; 0 = unknown (TIFF slices carry no
                     spacing). Volumes are resampled to square pixels (core.volume_grid), so
                     tumor_pixels x pixel_spacing_mm² is the tumor area in mm²
  slice_spacing_mm:  float, distance between slices in mm; 0 = unknown (TIFF); with the area,
                     a case's tumor volume in mL is Σ area x slice_spacing_mm / 1000
  mean_intensity_<channel>: float, per channel (pre_contrast, flair,
                     post_contrast) the mean 0..255 intensity over the head
                     (pixels where any channel is non-zero), 0 on a blank slice

The last four are summaries for the drift check between spans (DRIFT_FEATURES).
"""

import importlib.resources

IMAGE = "image"
MASK = "mask"
CASE_ID = "case_id"
SLICE_INDEX = "slice_index"
TUMOR_PIXELS = "tumor_pixels"
TUMOR_SIZE_BUCKET = "tumor_size_bucket"
HEIGHT = "height"
WIDTH = "width"
CONTEXT = "context"
TUMOR_PIXEL_FRACTION = "tumor_pixel_fraction"
PIXEL_SPACING_MM = "pixel_spacing_mm"
SLICE_SPACING_MM = "slice_spacing_mm"
UNKNOWN_SPACING = 0.0
MEAN_INTENSITIES = ("mean_intensity_pre_contrast", "mean_intensity_flair", "mean_intensity_post_contrast")
DRIFT_FEATURES = (TUMOR_PIXEL_FRACTION, *MEAN_INTENSITIES)

CHANNELS = 3
CHANNEL_NAMES = ("pre-contrast", "FLAIR", "post-contrast")

BUCKET_NONE = "none"
BUCKET_SMALL = "small"
BUCKET_MEDIUM = "medium"
BUCKET_LARGE = "large"
TUMOR_SIZE_BUCKETS = (BUCKET_NONE, BUCKET_SMALL, BUCKET_MEDIUM, BUCKET_LARGE)

# Upper bounds (inclusive) in tumor pixels at native 256x256 resolution:
# small <= 300 px (about 0.5 % of the slice, a lesion under ~2 cm across at
# ~0.8 mm/px), medium <= 1500 px, large above.
DEFAULT_SMALL_MAX_PIXELS = 300
DEFAULT_MEDIUM_MAX_PIXELS = 1500


def tumor_size_bucket(
    tumor_pixels: int,
    small_max_pixels: int = DEFAULT_SMALL_MAX_PIXELS,
    medium_max_pixels: int = DEFAULT_MEDIUM_MAX_PIXELS,
) -> str:
    """Bucket of a slice by its tumor area in pixels: none, small, medium or large."""
    if tumor_pixels < 0:
        raise ValueError(f"tumor_pixels must be >= 0, got {tumor_pixels}")
    if not 0 < small_max_pixels < medium_max_pixels:
        raise ValueError(
            f"bucket thresholds must satisfy 0 < small_max_pixels < medium_max_pixels, got {small_max_pixels}, {medium_max_pixels}"
        )
    if tumor_pixels == 0:
        return BUCKET_NONE
    if tumor_pixels <= small_max_pixels:
        return BUCKET_SMALL
    if tumor_pixels <= medium_max_pixels:
        return BUCKET_MEDIUM
    return BUCKET_LARGE


def schema_path() -> str:
    """Path of the curated `schema.pbtxt` (for ImportSchemaGen)."""
    return str(importlib.resources.files("data_schema") / "schema.pbtxt")
