"""Background removal (paper §4.1): per-video median background and a thresholded distance.

For each video (one camera), the background is the pixel-wise median of its grayscale frames.
A pixel whose grey level differs from it by more than ``threshold`` is foreground (the paper's
rule). Optionally (``morph`` > 1) an opening then closing with a ``morph`` × ``morph`` square at
the analysis resolution removes speckle and fills pin-holes; every object narrower than the square
vanishes from the foreground, and since masks are ANDed with the foreground no method can find it
again, so the default is a 3-pixel square (sensor noise only) and ``morph`` ≤ 1 turns it off. The
foreground mask turns one frame into two training images: the objects on black (labelled
before/after) and the belt with the objects blacked out (labelled background), the paper's
three-class formulation.

The analysis runs at a capped resolution (``ANALYSIS_MAX_SIDE``) so that 2400×2400 frames cost no
more than needed; masks are scaled back to frame size with nearest-neighbour for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["ANALYSIS_MAX_SIDE", "DEFAULT_MORPH", "analysis_size", "foreground_mask", "median_background", "to_gray"]

ANALYSIS_MAX_SIDE = 1024
#: side of the opening/closing square in pixels at the analysis resolution (≤ 1: none)
DEFAULT_MORPH = 3
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


def foreground_mask(gray: np.ndarray, background: np.ndarray, threshold: float,
                    morph: int = DEFAULT_MORPH) -> np.ndarray:
    """Foreground of one frame: ``|gray - background| > threshold``, then (``morph`` > 1) open and close.

    Args:
        gray: grayscale frame (uint8), same size as ``background``.
        background: the video's median background.
        threshold: grey-level distance above which a pixel is foreground.
        morph: side in pixels of the square opening/closing element; ≤ 1 for none (the paper's rule).

    Returns:
        uint8 mask, 1 = foreground (object), 0 = belt.
    """
    diff = cv2.absdiff(gray, background)
    mask = (diff > threshold).astype(np.uint8)
    if morph > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (morph, morph))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return mask
