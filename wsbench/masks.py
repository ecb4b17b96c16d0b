"""The mask rule: how maps become masks, the same for the evaluator, export, segmentation, figures and distillation.

A map value in [0, 1] falls in bin ⌊value × :data:`BINS`⌋ (clipped to ``BINS − 1``); threshold t keeps
the bins ≥ round(t × ``BINS``), so a mask cut at one threshold is exactly what the evaluator's
sweep over the grid 0, 1/``BINS``, … counts at that threshold. A pixel is *illegal* when its bin
reaches the threshold's **and** it is foreground (background removal: illegal objects can only be
objects). In the paper's three-label domain (Fig. 3b, :data:`CLASSES`) any other foreground pixel is
*legal* and the rest *background*. Nothing here reads GT masks.
"""

from __future__ import annotations

import numpy as np

from .texts import BINS

__all__ = ["BINS", "CLASSES", "ILLEGAL", "LEGAL", "PALETTE", "label_mask", "predict_mask", "score_bins",
           "threshold_bin"]

#: label values of three-label masks, in order (PNG pixel value = index)
CLASSES = ("background", "legal", "illegal")
#: RGB colours of the classes, as in the paper's Fig. 3b (belt blue, legal green, illegal red)
PALETTE = ((0, 0, 255), (0, 255, 0), (255, 0, 0))
LEGAL, ILLEGAL = 1, 2


def score_bins(scores: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each score: ⌊score × bins⌋ clipped to [0, bins − 1]; threshold k/bins keeps bins ≥ k."""
    return np.clip((np.asarray(scores) * bins).astype(np.int64), 0, bins - 1)


def threshold_bin(threshold: float) -> int:
    """The first bin a threshold keeps: round(threshold × :data:`BINS`)."""
    return int(round(threshold * BINS))


def predict_mask(scores: np.ndarray, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """The predicted *illegal* mask at ``threshold``, exactly as the evaluator counts it.

    Args:
        scores: (H, W) maps in [0, 1] at frame size.
        foreground: (H, W) boolean foreground (illegal objects can only be objects).
        threshold: a threshold of the grid, e.g. ``result["metrics"]["threshold"]``.

    Returns:
        (H, W) boolean mask: score bin ≥ threshold's bin and foreground.
    """
    return (score_bins(scores) >= threshold_bin(threshold)) & foreground


def label_mask(scores: np.ndarray | None, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """A frame's mask in the three-label domain.

    Args:
        scores: (H, W) maps in [0, 1] at frame size, or ``None`` for an *after* frame (no illegal
            objects by definition).
        foreground: (H, W) boolean foreground (background removal).
        threshold: the run's val-chosen threshold.

    Returns:
        (H, W) uint8: 0 background, 1 legal (foreground, not illegal), 2 illegal.
    """
    out = foreground.astype(np.uint8) * LEGAL
    if scores is not None:
        out[predict_mask(scores, foreground, threshold)] = ILLEGAL
    return out
