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

Beside the paper's grey-level rule (``gray``) there is a colour rule (``lab``): the distance of
each pixel to the video's per-channel median belt in CIELAB (CIE76 ΔE, OpenCV's conversion of
float RGB in [0, 1], so L is 0..100). A blue bottle of the belt's grey level is invisible to the
grey rule and far from the belt in colour. The ``lab`` rule cleans with a closing *before* the
opening, so an object that the threshold cut into strips (a print with rows of belt-like grey)
is joined before the opening could erase its strips; the ``gray`` rule keeps the paper's
opening-then-closing, so its masks and caches stay as they were. Either rule's threshold is
fixed (``threshold_mode="fixed"``) or chosen per video without ground truth by Otsu's method on
the distances of the frames the median is taken over (``"otsu"``).

The analysis runs at a capped resolution (``ANALYSIS_MAX_SIDE``) so that 2400×2400 frames cost no
more than needed; masks are scaled back to frame size with nearest-neighbour for evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import UserError

__all__ = ["ANALYSIS_MAX_SIDE", "DEFAULT_LAB_THRESHOLD", "DEFAULT_MORPH", "RULES", "THRESHOLD_MODES",
           "BackgroundRule", "VideoBackground", "analysis_size", "clean_mask", "delta_e", "foreground_mask",
           "median_background", "otsu_threshold", "to_gray", "to_lab"]

ANALYSIS_MAX_SIDE = 1024
#: side of the opening/closing square in pixels at the analysis resolution (≤ 1: none)
DEFAULT_MORPH = 3
#: background rules: the paper's grey-level distance, or CIELAB ΔE (CIE76)
RULES = ("gray", "lab")
#: how a rule's threshold is set: the fixed value, or Otsu's method per video
THRESHOLD_MODES = ("fixed", "otsu")
#: ΔE above which a pixel is foreground under the ``lab`` rule. About what the grey rule's 22 grey
#: levels are in lightness on the belt's dark grey (L ≈ 28 at grey 67, ≈ 37 at grey 89); chosen
#: from the belt's colours, not from ground truth.
DEFAULT_LAB_THRESHOLD = 10.0
#: Otsu's histogram: distances above this are put in the last bin (ΔE; grey levels use 0..255)
_LAB_OTSU_RANGE = 100.0
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


def to_lab(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 frame → CIELAB float32 ``(h, w, 3)`` at ``size`` = (w, h): L in 0..100, a and b about ±128.

    The frame is resized (area) in RGB, then converted by OpenCV from float RGB in [0, 1] (sRGB,
    D65 white).
    """
    if (frame.shape[1], frame.shape[0]) != tuple(size):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def delta_e(lab: np.ndarray, background: np.ndarray) -> np.ndarray:
    """CIE76 colour difference: the Euclidean distance in CIELAB, per pixel (float32 ``(h, w)``)."""
    return np.sqrt(np.sum((lab.astype(np.float32) - background.astype(np.float32)) ** 2, axis=-1))


def otsu_threshold(distances: np.ndarray, high: float, bins: int = 256) -> float:
    """Otsu's threshold of a set of distances: the cut that maximises the between-class variance.

    Args:
        distances: distances of any shape (≥ 0); values above ``high`` fall in the last bin.
        high: upper end of the histogram's range.
        bins: number of equal histogram bins over ``[0, high]``.

    Returns:
        The boundary between the classes: the upper edge of the lower class's last bin, so the
        upper class is ``distance >= boundary`` (``high`` when every distance falls in one bin).
    """
    width = high / bins
    index = np.clip((np.asarray(distances, np.float64) / width).astype(np.int64), 0, bins - 1)
    hist = np.bincount(index.ravel(), minlength=bins).astype(np.float64)
    centres = (np.arange(bins) + 0.5) * width
    w0 = np.cumsum(hist)[:-1]  # lower class = bins 0..k
    w1 = hist.sum() - w0
    s0 = np.cumsum(hist * centres)[:-1]
    s1 = (hist * centres).sum() - s0
    valid = (w0 > 0) & (w1 > 0)
    if not valid.any():
        return float(high)
    between = np.where(valid, w0 * w1 * (s0 / np.maximum(w0, 1) - s1 / np.maximum(w1, 1)) ** 2, -1.0)
    return float((int(np.argmax(between)) + 1) * width)


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
    return clean_mask((diff > threshold).astype(np.uint8), morph, close_first=False)


def clean_mask(mask: np.ndarray, morph: int, close_first: bool) -> np.ndarray:
    """Opening and closing of a 0/1 uint8 mask with a ``morph`` square (none when ``morph`` ≤ 1).

    Args:
        mask: uint8 0/1 mask.
        morph: side of the square in pixels.
        close_first: close then open (joins strips 2 px apart before the opening could erase
            them) instead of the paper recipe's open then close.

    Returns:
        The cleaned mask.
    """
    if morph <= 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (morph, morph))
    ops = (cv2.MORPH_CLOSE, cv2.MORPH_OPEN) if close_first else (cv2.MORPH_OPEN, cv2.MORPH_CLOSE)
    for op in ops:
        mask = cv2.morphologyEx(mask, op, kernel)
    return mask


@dataclasses.dataclass(frozen=True)
class BackgroundRule:
    """How a video's foreground is found: the rule, its threshold and the cleaning.

    Attributes:
        rule: ``"gray"`` (the paper: grey-level distance to the median belt) or ``"lab"`` (CIE76
            ΔE to the per-channel median belt in CIELAB).
        threshold: grey levels above which a pixel is foreground (``gray``, fixed mode).
        lab_threshold: ΔE above which a pixel is foreground (``lab``, fixed mode).
        threshold_mode: ``"fixed"`` or ``"otsu"`` (per video, from the distances of the frames the
            median is taken over; no ground truth).
        morph: side of the cleaning square (≤ 1: none). ``gray`` opens then closes (the paper's
            recipe here); ``lab`` closes then opens, so objects cut into strips are joined first.
    """

    rule: str = "gray"
    threshold: float = 22.0
    lab_threshold: float = DEFAULT_LAB_THRESHOLD
    threshold_mode: str = "fixed"
    morph: int = DEFAULT_MORPH

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise UserError(f"--bg-rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise UserError(f"--bg-threshold-mode must be one of {', '.join(THRESHOLD_MODES)}, "
                            f"not {self.threshold_mode!r}")

    @classmethod
    def of(cls, options: Any) -> BackgroundRule:
        """The rule of a recipe (or anything with its ``bg_*`` attributes)."""
        return cls(options.bg_rule, options.bg_threshold, options.bg_lab_threshold, options.bg_threshold_mode,
                   options.bg_morph)

    @property
    def paper(self) -> bool:
        """Whether this is the paper's rule with a fixed threshold (what caches were keyed on before the others)."""
        return self.rule == "gray" and self.threshold_mode == "fixed"

    def cache_name(self) -> str:
        """The part of a cache folder's name this rule sets (the paper's rule: as before the others existed)."""
        name = f"bg{self.threshold:g}-m{max(self.morph, 1)}"
        if self.rule == "lab":
            name = f"lab{self.lab_threshold:g}-m{max(self.morph, 1)}"
        return name + ("-otsu" if self.threshold_mode == "otsu" else "")

    def convert(self, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 frame → the rule's image at ``size``: grey uint8 ``(h, w)`` or CIELAB float32 ``(h, w, 3)``."""
        return to_lab(frame, size) if self.rule == "lab" else to_gray(frame, size)

    def distance(self, image: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Per-pixel distance of a converted frame to the belt: grey levels (uint8) or ΔE (float32)."""
        return delta_e(image, background) if self.rule == "lab" else cv2.absdiff(image, background)

    def fit(self, images: Sequence[np.ndarray]) -> VideoBackground:
        """A video's background from converted frames (:meth:`convert`): their median and the threshold.

        Args:
            images: the frames the median is taken over, converted at the analysis size.

        Returns:
            The video's :class:`VideoBackground`.
        """
        if self.rule == "lab":
            background = np.median(np.stack(list(images)), axis=0).astype(np.float32)
        else:
            background = median_background(images)
        if self.threshold_mode == "fixed":
            threshold = self.lab_threshold if self.rule == "lab" else self.threshold
        elif self.rule == "lab":
            threshold = otsu_threshold(np.stack([self.distance(i, background) for i in images]), _LAB_OTSU_RANGE)
        else:  # integer grey levels: distance >= boundary is distance > boundary - 1
            threshold = otsu_threshold(np.stack([self.distance(i, background) for i in images]), 256) - 1
        return VideoBackground(self, background, float(threshold))


@dataclasses.dataclass(frozen=True)
class VideoBackground:
    """One video's belt under a :class:`BackgroundRule`: the median image and the threshold used.

    Attributes:
        rule: the rule.
        image: the median belt at the analysis size, in the rule's space.
        threshold: the video's threshold (the rule's fixed one, or the one Otsu chose).
    """

    rule: BackgroundRule
    image: np.ndarray
    threshold: float

    @property
    def size(self) -> tuple[int, int]:
        """The analysis size ``(w, h)``."""
        return self.image.shape[1], self.image.shape[0]

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """Foreground of an RGB uint8 frame at the analysis size: uint8, 1 = object, 0 = belt."""
        if self.rule.rule == "gray":  # the paper's rule, exactly as before
            return foreground_mask(to_gray(frame, self.size), self.image, self.threshold, self.rule.morph)
        mask = (self.rule.distance(self.rule.convert(frame, self.size), self.image) > self.threshold).astype(np.uint8)
        return clean_mask(mask, self.rule.morph, close_first=True)
