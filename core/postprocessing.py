"""Post-processing of tumor probabilities into the tumor mask: the one definition.

For one slice of probabilities p [H, W] and a `PostProcessing(threshold t,
min_component_pixels m)`:
  1. mask = p > t (strictly: p == t is not tumor);
  2. the mask's 8-connected components (pixels touching by an edge or a
     corner, within the slice) of fewer than m pixels are removed; m = 0 keeps
     everything.
Sizes are in pixels of the slice the mask is made at: the slice's own size
(kaggle_3m: 256 x 256), which is the size users see, not the training size.
8-connectivity because a thin or diagonal strand of a tumor outline is one
object to a reader; 4-connectivity would split it into pieces small enough
to be removed.

The SavedModel applies it in its signatures (`models.postprocessing`, in
TensorFlow ops, so TF Serving users get it too); this module is the numpy
implementation the trainer uses to choose the parameters on the eval
patients (`choose`) and the volume path applies at the scan's native
resolution; the tests prove both implementations equal.

Choosing, after nnU-Net (Isensee et al. 2021): start from the default (0.5,
0); try every threshold of the grid and adopt the best only if it improves
the criterion (`dice_per_patient_mean` on the eval patients: hurt both by
false positives on the tumor-free slices of a patient and by missed tumor)
by at least MIN_GAIN, then the same for the minimum component size at the
adopted threshold. Ties go to the step closer to the default. MIN_GAIN
because a few eval patients cannot tell a gain of a thousandth from chance,
and removing components costs what they may not show: the small lesions of
other patients.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from core import metrics

CONNECTIVITY = np.ones((3, 3), bool)  # 8-connected, in-plane (scipy.ndimage.label structure)
THRESHOLD_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MIN_COMPONENT_PIXELS_GRID = (0, 10, 25, 50, 100, 200)  # at native 256 x 256
CRITERION = "dice_per_patient_mean"
MIN_GAIN = 0.005  # a step is adopted only if it raises CRITERION by at least this much


@dataclasses.dataclass(frozen=True)
class PostProcessing:
    """threshold: a pixel is tumor when its probability is > threshold, in (0, 1).
    min_component_pixels: 8-connected components of fewer pixels (at the mask's
    own resolution) are removed from each slice; 0 removes nothing."""

    threshold: float = metrics.PROBABILITY_THRESHOLD
    min_component_pixels: int = 0

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if isinstance(self.min_component_pixels, bool) or not isinstance(self.min_component_pixels, int) or self.min_component_pixels < 0:
            raise ValueError(f"min_component_pixels must be an integer >= 0, got {self.min_component_pixels!r}")

    def to_dict(self) -> dict:
        """The JSON form: {"threshold": t, "min_component_pixels": m}."""
        return {"threshold": float(self.threshold), "min_component_pixels": int(self.min_component_pixels)}

    @classmethod
    def from_dict(cls, values: dict | None) -> "PostProcessing":
        """From the JSON form; missing keys (or None: a model exported before post-processing) take the defaults."""
        values = values or {}
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown post-processing keys: {sorted(unknown)}")
        return cls(**values)

    def describe(self) -> str:
        """One line for people: which steps are applied."""
        steps = f"probability > {self.threshold:g}"
        if self.min_component_pixels:
            steps += f", then 8-connected components < {self.min_component_pixels} px removed per slice"
        return steps


def remove_small_components(masks: np.ndarray, min_component_pixels: int) -> np.ndarray:
    """masks bool [..., H, W] -> the same without the 8-connected components (per slice) of fewer pixels."""
    masks = np.asarray(masks, bool)
    if min_component_pixels <= 0:
        return masks
    flat = masks.reshape((-1, *masks.shape[-2:]))
    kept = np.empty_like(flat)
    for index, mask in enumerate(flat):
        labels, count = ndimage.label(mask, structure=CONNECTIVITY)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= min_component_pixels
        keep[0] = False  # background
        kept[index] = keep[labels]
    return kept.reshape(masks.shape)


def apply(probabilities: np.ndarray, spec: PostProcessing) -> np.ndarray:
    """probabilities float [..., H, W] (the last two axes a slice) -> mask uint8 0/1 [..., H, W]."""
    return remove_small_components(np.asarray(probabilities) > spec.threshold, spec.min_component_pixels).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class EvalSlice:
    """One eval slice as the search needs it: truth bool [H, W], probabilities float32 [H, W]."""

    case_id: str
    slice_index: int
    truth: np.ndarray
    probabilities: np.ndarray


@dataclasses.dataclass(frozen=True)
class Choice:
    """The outcome of `choose`: the adopted spec, the METRIC_KEYS before (default) and after, every point tried."""

    spec: PostProcessing
    before: dict[str, float]
    after: dict[str, float]
    grid: list[dict]

    def to_dict(self) -> dict:
        """JSON-safe (NaN as None)."""
        return {
            "criterion": CRITERION,
            "default": PostProcessing().to_dict(),
            "chosen": self.spec.to_dict(),
            "before": _json_safe(self.before),
            "after": _json_safe(self.after),
            "grid": [_json_safe(row) for row in self.grid],
        }


def _json_safe(values: dict) -> dict:
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in values.items()}


def evaluate(eval_slices: Sequence[EvalSlice], spec: PostProcessing) -> dict[str, float]:
    """core.metrics.summarize (METRIC_KEYS) of the slices post-processed with `spec`."""
    return metrics.summarize(metrics.slice_counts(s.truth, apply(s.probabilities, spec), s.case_id, s.slice_index) for s in eval_slices)


def choose(
    eval_slices: Sequence[EvalSlice],
    thresholds: Sequence[float] = THRESHOLD_GRID,
    min_component_pixels: Sequence[int] = MIN_COMPONENT_PIXELS_GRID,
    min_gain: float = MIN_GAIN,
) -> Choice:
    """The post-processing the eval slices support (see the module docstring for the search);
    min_gain 0 adopts any strict improvement."""
    default = PostProcessing()
    scores: dict[PostProcessing, dict[str, float]] = {default: evaluate(eval_slices, default)}

    def score(spec: PostProcessing) -> float:
        if spec not in scores:
            scores[spec] = evaluate(eval_slices, spec)
        value = scores[spec][CRITERION]
        return -math.inf if math.isnan(value) else value

    def best_step(current: PostProcessing, candidates: list[PostProcessing], distance) -> PostProcessing:
        best = max(sorted(candidates, key=distance), key=score)  # the first of equal scores: the closest to the default
        return best if score(best) > score(current) + min_gain else current

    chosen = best_step(default, [PostProcessing(t, 0) for t in thresholds], lambda s: abs(s.threshold - default.threshold))
    chosen = best_step(chosen, [PostProcessing(chosen.threshold, m) for m in min_component_pixels], lambda s: s.min_component_pixels)
    grid = [{**spec.to_dict(), CRITERION: values[CRITERION]} for spec, values in scores.items()]
    return Choice(chosen, scores[default], scores[chosen], grid)
