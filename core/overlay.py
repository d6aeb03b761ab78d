"""Overlays: the slice with the truth outline (green) and the predicted outline (red)."""

import numpy as np
from scipy import ndimage

TRUTH_COLOR = (0, 255, 0)
PREDICTION_COLOR = (255, 0, 0)


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Boolean [H, W]: the pixels of `mask` within `width` pixels of its background."""
    mask = np.asarray(mask) > 0
    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)


def overlay(image: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """image uint8 [H, W, 3] (shown as RGB, like kaggle_3m previews) -> uint8 [H, W, 3] with outlines."""
    picture = np.array(image, dtype=np.uint8, copy=True)
    if truth is not None:
        picture[outline(truth, 2)] = TRUTH_COLOR
    picture[outline(prediction)] = PREDICTION_COLOR  # 1 px, drawn last: the truth stays visible around it
    return picture
