"""The contract every flow estimator keeps (:class:`FlowContract`), on frames with a known shift."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from ._base import Contract

__all__ = ["FlowContract", "textured_pair"]


def textured_pair(size: int = 64, shift: tuple[int, int] = (3, 2), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed RGB noise and the same image moved by ``shift = (x, y)`` pixels (wrapping around).

    Args:
        size: side of the square frames.
        shift: the motion from the first frame to the second, ``(u, v)`` in pixels.
        seed: noise seed.

    Returns:
        ``(src, dst)``, RGB ``uint8`` ``(1, size, size, 3)`` each, with ``dst(x + shift) = src(x)``.
    """
    import cv2

    noise = np.random.default_rng(seed).normal(size=(size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    src = (smooth * 255).round().astype(np.uint8)
    dst = np.roll(src, shift=(shift[1], shift[0]), axis=(0, 1))
    return src[None], dst[None]


class FlowContract(Contract):
    """Checks of one registered flow estimator on textured frames with a known shift.

    An estimator that computes flow from frames (``estimator(src, dst)``) must return ``float32``
    ``(N, H, W, 2)`` finite flow, zero flow for identical frames, and a known shift in the
    convention of :mod:`wsbench.flow` (``src(x) ≈ dst(x + flow(x))``, so the flow back is the
    negated shift), within ``tolerance`` pixels (median over the interior). An estimator that reads
    precomputed files (it has ``video_flows``, like ``files``) must read a tree of ``.flo`` files
    back at another resolution, scaled, with the backward flow the negated forward one.

    Attributes:
        name: the estimator's registry name.
        options: its options for the checks.
        size: side of the checked frames (pixels).
        shift: the known motion ``(u, v)`` in pixels.
        tolerance: allowed error of zero and shift flows (pixels, median over the interior).
        accurate: ``False`` for an estimator whose checked instance cannot be expected to find
            motion (e.g. a network with random weights); only the form of its output is checked.
    """

    size: ClassVar[int] = 64
    shift: ClassVar[tuple[int, int]] = (3, 2)
    tolerance: ClassVar[float] = 0.5
    accurate: bool = True  # an instance may set it, e.g. when it falls back to random weights

    @pytest.fixture
    def estimator(self, spec):
        """The estimator built from ``spec``."""
        from wsbench.flow import create_flow

        name, options = spec
        return create_flow(name, **options)

    def _frames_only(self, estimator: Any) -> None:
        if hasattr(estimator, "video_flows"):
            pytest.skip(f"{estimator!r} reads precomputed files; see test_reads_flo_files_back")

    def _accurate_only(self) -> None:
        if not self.accurate:
            pytest.skip("this estimator instance is not expected to find motion (accurate = False)")

    def _interior_median(self, flow: np.ndarray) -> np.ndarray:
        margin = max(abs(self.shift[0]), abs(self.shift[1])) + 6  # np.roll wraps the border around
        return np.median(flow[:, margin:-margin, margin:-margin].reshape(-1, 2), axis=0)

    def test_registered_with_description_and_docstring(self, spec):
        from wsbench.flow import FLOWS

        entry = FLOWS.entry(spec[0])
        assert entry.meta.description, f"flow {spec[0]!r} has no description"
        assert entry.obj.__doc__ and entry.obj.__doc__.strip()

    def test_output_shape_dtype_and_finite(self, estimator):
        from wsbench.flow import FlowEstimator

        self._frames_only(estimator)
        assert isinstance(estimator, FlowEstimator)
        src, dst = textured_pair(self.size, self.shift)
        src2, dst2 = textured_pair(self.size, self.shift, seed=1)
        flow = np.asarray(estimator(np.concatenate([src, src2]), np.concatenate([dst, dst2])))
        assert flow.shape == (2, self.size, self.size, 2) and flow.dtype == np.float32
        assert np.isfinite(flow).all()

    def test_identical_frames_give_zero_flow(self, estimator):
        self._frames_only(estimator)
        self._accurate_only()
        src, _ = textured_pair(self.size, self.shift)
        flow = np.asarray(estimator(src, src.copy()))
        assert np.abs(self._interior_median(flow)).max() <= self.tolerance

    def test_known_shift_forward_and_backward(self, estimator):
        self._frames_only(estimator)
        self._accurate_only()
        src, dst = textured_pair(self.size, self.shift)
        forward = self._interior_median(np.asarray(estimator(src, dst)))
        backward = self._interior_median(np.asarray(estimator(dst, src)))
        assert np.allclose(forward, self.shift, atol=self.tolerance), f"flow src -> dst {forward}, moved {self.shift}"
        assert np.allclose(backward, np.negative(self.shift), atol=self.tolerance), \
            f"flow dst -> src {backward}, expected {np.negative(self.shift)}"

    def test_whole_video_flows_in_both_directions(self, estimator):
        from wsbench.flow import estimate_video_flows

        self._frames_only(estimator)
        self._accurate_only()
        src, dst = textured_pair(self.size, self.shift)
        forward, backward = estimate_video_flows(np.concatenate([src, dst]), estimator)
        assert np.allclose(self._interior_median(forward[:1]), self.shift, atol=self.tolerance)
        assert np.allclose(self._interior_median(backward[1:]), np.negative(self.shift), atol=self.tolerance)
        assert not forward[1].any() and not backward[0].any(), "no neighbour: zero flow"

    def test_reads_flo_files_back(self, estimator, tmp_path):
        """File readers: a ``.flo`` tree of a constant motion, read back at half the resolution."""
        import cv2

        from wsbench.data import Video, VideoIndex
        from wsbench.data.io import ImageFiles
        from wsbench.flow import flo_path, write_flo

        if not hasattr(estimator, "video_flows"):
            pytest.skip(f"{estimator!r} computes flow from frames")
        src, dst = textured_pair(self.size, self.shift)
        paths = []
        for n, frame in enumerate((src[0], dst[0], src[0])):
            paths.append(tmp_path / "data" / "before" / "v0" / f"frame_{n}.png")
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(paths[-1]), frame[..., ::-1])
        # the files where the layout keeps them (Video.flow_files), or in the estimator's own tree
        layout = [tmp_path / "layout" / f"frame_{n}.flo" for n in range(2)]
        video = Video("before", "v0", ImageFiles(paths), flow_files=layout)
        index = VideoIndex("contract", tmp_path / "data", [video])
        root = getattr(estimator, "root", None)
        for n, motion in enumerate((self.shift, np.negative(self.shift))):
            path = flo_path(root, index, video, n) if root is not None else layout[n]
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.broadcast_to(np.asarray(motion, np.float32), (self.size, self.size, 2)))
        half = (self.size // 2, self.size // 2)
        forward, backward = estimator.video_flows(index, video, half)
        assert forward.shape == backward.shape == (3, *half, 2) and forward.dtype == np.float32
        assert np.allclose(forward[0], np.divide(self.shift, 2)) and np.allclose(forward[1], np.divide(self.shift, -2))
        assert not forward[2].any() and not backward[0].any(), "no neighbour: zero flow"
        assert np.array_equal(backward[1:], -forward[:-1]), "the flow back is the negated file of the previous frame"
