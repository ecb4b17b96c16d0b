"""The classical estimators: OpenCV's DIS and Farneback flow, both on grayscale frames.

Both share :class:`OpenCVFlow`, which checks the batches, converts each frame to grayscale and
asks the subclass for the flow of one pair; a subclass only says how one pair is computed and
which options describe it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import cv2
import numpy as np

from ..errors import UserError
from .base import check_pair, register_flow

__all__ = ["OpenCVFlow", "DisFlow", "FarnebackFlow"]


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


class OpenCVFlow(abc.ABC):
    """Base of the OpenCV estimators: one grayscale pair at a time, backends' output unchanged.

    Subclasses implement :meth:`pair` and list their option attributes in ``options`` (shown by
    ``repr``). OpenCV's convention is wsbench's (``calc(prev, next)`` gives the flow from ``prev``
    to ``next``), so no sign or axis changes are needed.
    """

    #: names of the attributes that hold the estimator's options, in ``repr`` order
    options: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """The flow from one grayscale ``uint8`` frame ``(H, W)`` to another, ``float32`` ``(H, W, 2)``."""

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from each ``src[i]`` to ``dst[i]`` (arguments and result: :class:`~wsbench.flow.FlowEstimator`)."""
        check_pair(src, dst)
        out = np.empty(src.shape[:3] + (2,), np.float32)
        for i in range(len(src)):
            out[i] = self.pair(_gray(src[i]), _gray(dst[i]))
        return out

    def __repr__(self) -> str:
        values: list[Any] = [getattr(self, name) for name in self.options]
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(self.options, values, strict=True))})"


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@register_flow("dis", description="OpenCV DIS (dense inverse search) on grayscale frames")
class DisFlow(OpenCVFlow):
    """OpenCV's DIS optical flow (Kroeger et al. 2016), on grayscale versions of the frames.

    One DIS object is created per estimator and reused for every pair (it is not thread-safe:
    use one estimator per thread).

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (OpenCV's presets; slower is more
            accurate).

    Raises:
        UserError: for an unknown preset.
    """

    options = ("preset",)

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise UserError(f"flow 'dis': preset {preset!r} is not one of {', '.join(_DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """DIS flow from one grayscale frame to another."""
        return self._dis.calc(src, dst, None)


@register_flow("farneback", description="OpenCV Farneback polynomial-expansion flow on grayscale frames")
class FarnebackFlow(OpenCVFlow):
    """OpenCV's Farneback flow (``cv2.calcOpticalFlowFarneback``) on grayscale frames.

    The pyramid scale is fixed at 0.5 (each level halves the image); ``poly_sigma`` follows
    ``poly_n`` as OpenCV's documentation recommends (1.1 for 5, 1.5 for 7).

    Args:
        levels: number of pyramid levels (including the full image); more levels follow larger
            motions. Default 4 (motions up to roughly ``winsize * 2**(levels-1) / 2`` pixels).
        winsize: averaging window in pixels; larger is smoother and more robust to noise.
        iterations: iterations per pyramid level.
        poly_n: neighbourhood of the polynomial expansion, 5 or 7.

    Raises:
        UserError: for out-of-range values.
    """

    options = ("levels", "winsize", "iterations", "poly_n")

    def __init__(self, levels: int = 4, winsize: int = 15, iterations: int = 3, poly_n: int = 5) -> None:
        if poly_n not in (5, 7):
            raise UserError(f"flow 'farneback': poly_n must be 5 or 7, got {poly_n!r}")
        for label, value, low in (("levels", levels, 1), ("winsize", winsize, 3), ("iterations", iterations, 1)):
            if not isinstance(value, int) or value < low:
                raise UserError(f"flow 'farneback': {label} must be an integer >= {low}, got {value!r}")
        self.levels = levels
        self.winsize = winsize
        self.iterations = iterations
        self.poly_n = poly_n
        self._poly_sigma = 1.1 if poly_n == 5 else 1.5

    def pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Farneback flow from one grayscale frame to another."""
        return cv2.calcOpticalFlowFarneback(
            src, dst, None, 0.5, self.levels, self.winsize, self.iterations, self.poly_n, self._poly_sigma, 0,
        )
