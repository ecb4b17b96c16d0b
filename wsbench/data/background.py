"""Background removal (paper §4.1): per-video median background, thresholded distance, morphology.

For each video (one camera), the background is the pixel-wise median of its grayscale frames.
A pixel whose grey level differs from it by more than ``threshold`` is foreground; a small
opening then closing removes speckle and fills pin-holes. The foreground mask turns one frame into
two training images: the objects on black (labelled before/after) and the belt with the objects
blacked out (labelled background), the paper's three-class formulation.

The analysis runs at a capped resolution (``ANALYSIS_MAX_SIDE``) so that 2400×2400 frames cost no
more than needed; masks are scaled back to frame size with nearest-neighbour for evaluation.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

__all__ = ["ANALYSIS_MAX_SIDE", "analysis_size", "foreground_mask", "median_background", "morph_kernel", "to_gray"]

ANALYSIS_MAX_SIDE = 1024
#: number of evenly spaced frames a video's median is taken over (all frames if fewer)
MEDIAN_FRAMES = 64


def analysis_size(width: int, height: int, max_side: int = ANALYSIS_MAX_SIDE) -> tuple[int, int]:
    """``(w, h)`` at which background removal runs: the frame size, scaled down to ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_gray(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 frame → grayscale uint8 at ``size`` = (w, h)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if (gray.shape[1], gray.shape[0]) != tuple(size):
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def median_background(grays: Iterable[np.ndarray]) -> np.ndarray:
    """Pixel-wise median of grayscale frames (uint8, all the same size)."""
    stack = np.stack(list(grays))
    return np.median(stack, axis=0).astype(np.uint8)


def morph_kernel(width: int, height: int) -> np.ndarray:
    """Square structuring element of about 3 px per 128 px of the shorter side (odd, ≥ 3)."""
    k = max(3, int(round(3 * min(width, height) / 128)))
    k += 1 - k % 2
    return cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))


def foreground_mask(gray: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground of one frame: ``|gray - background| > threshold``, then open and close.

    Args:
        gray: grayscale frame (uint8), same size as ``background``.
        background: the video's median background.
        threshold: grey-level distance above which a pixel is foreground.

    Returns:
        uint8 mask, 1 = foreground (object), 0 = belt.
    """
    diff = cv2.absdiff(gray, background)
    mask = (diff > threshold).astype(np.uint8)
    kernel = morph_kernel(gray.shape[1], gray.shape[0])
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
