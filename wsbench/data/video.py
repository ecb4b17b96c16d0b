"""Frames decoded from a video file (MP4, AVI, … anything OpenCV's FFmpeg backend reads).

:class:`VideoFile` is a :class:`~wsbench.data.io.FrameSource`: iterating decodes sequentially and
holds one frame at a time, so memory does not grow with the video's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .io import check_pixels

__all__ = ["VIDEO_SUFFIXES", "VideoFile", "is_video_file"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


def is_video_file(path: Path) -> bool:
    """Whether ``path`` has a video suffix (case-insensitive)."""
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


class VideoFile:
    """The frames of one video file.

    Args:
        path: the video file.
        stride: keep every ``stride``-th frame (1 = all).
        max_frames: stop after this many kept frames (``None``: all).
        start: first frame (0-based frame number in the file); with ``max_frames`` this makes a
            segment of a long recording a video of its own. Frame names keep the file's frame
            numbers (``<stem>_<number>``), so GT mask names do not depend on segmentation.

    Raises:
        UserError: the file is missing or OpenCV cannot decode it.
    """

    def __init__(self, path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
                 start: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: video file not found")
        if stride < 1:
            raise UserError(f"{self.path}: frame stride must be at least 1")
        if start < 0:
            raise UserError(f"{self.path}: start frame must be at least 0")
        self.stride, self.max_frames, self.start = stride, max_frames, start
        capture = self._open()
        try:
            self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            check_pixels(self.path, *self.size)
        finally:
            capture.release()
        if count <= 0:  # some containers do not store the count: decode once to count
            count = sum(1 for _ in self._decode())
        self.frame_count = count  #: frames in the whole file
        kept = (max(0, count - start) + stride - 1) // stride
        self._length = min(kept, max_frames) if max_frames is not None else kept
        if self._length == 0:
            raise UserError(f"{self.path}: video has no frames" + (f" from frame {start}" if start else ""))
        digits = max(6, len(str(count)))
        self.names = [f"{self.path.stem}_{start + i * stride:0{digits}d}" for i in range(self._length)]

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise UserError(f"{self.path}: not a readable video (OpenCV could not open it)")
        return capture

    def _decode(self, start: int = 0) -> Iterator[np.ndarray]:
        """Raw BGR frames from frame ``start`` on (seeks, then skips frames if the seek fell short)."""
        capture = self._open()
        try:
            if start:
                capture.set(cv2.CAP_PROP_POS_FRAMES, start)
                if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) != start:  # container without exact seeking
                    capture.release()
                    capture = self._open()
                    for _ in range(start):
                        if not capture.grab():
                            return
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order as RGB uint8, decoded one at a time."""
        kept = 0
        for i, frame in enumerate(self._decode(self.start)):
            if i % self.stride:
                continue
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            kept += 1
            if kept >= self._length:
                return
        if kept < self._length:
            raise UserError(f"{self.path}: video ended after {kept} of {self._length} frames (truncated file?)")

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8 (seeks; sequential access through iteration is faster)."""
        if not 0 <= index < self._length:
            raise IndexError(index)
        capture = self._open()
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, self.start + index * self.stride)
            ok, frame = capture.read()
        finally:
            capture.release()
        if not ok:
            raise UserError(f"{self.path}: cannot decode frame {self.start + index * self.stride} (truncated file?)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def frame_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of frame ``index`` (every frame of a video file has the file's size)."""
        return self.size

    def fingerprint(self) -> list:
        """(name, size, mtime, stride, frames, start): what the caches are keyed on."""
        st = self.path.stat()
        return [[self.path.name, st.st_size, st.st_mtime_ns, self.stride, self._length, self.start]]
