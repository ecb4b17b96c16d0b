"""Middlebury ``.flo`` files: reading and writing them, the tree that mirrors a data set's frames,
the ``files`` estimator that reads such a tree, and :func:`write_flo_tree`, which writes one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..files import atomic_write_bytes
from .base import register_flow
from .warping import resize_flow

__all__ = ["FLO_MAGIC", "FLO_UNKNOWN", "read_flo", "valid_flow", "write_flo", "flo_path", "FlowFiles",
           "check_flow_size", "write_flo_tree"]

FLO_MAGIC = 202021.25
#: Middlebury's "unknown flow" marker: a component at or above this magnitude means no flow
FLO_UNKNOWN = 1e9
_FLO_MAX_SIDE = 99999  # the limit of the Middlebury reference reader


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Format (little-endian): float32 magic ``202021.25``, int32 width, int32 height, then
    ``height × width × 2`` float32 values, row-major with ``u, v`` interleaved. Pixels with an
    unknown flow (a component that is NaN, infinite or of magnitude ≥ 1e9, Middlebury's marker)
    are returned as NaN in both components: :func:`warp` treats them as invalid.

    Args:
        path: the file.

    Returns:
        ``float32`` flow ``(H, W, 2)``.

    Raises:
        UserError: unreadable file, wrong magic number, absurd size, truncated or over-long data;
            the message names the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read flow file {str(path)!r}: {err.strerror or err}") from None
    if len(data) < 12:
        raise UserError(f"flow file {str(path)!r} is truncated: {len(data)} bytes, less than the 12-byte header")
    where = f"flow file {str(path)!r}"
    magic = float(np.frombuffer(data, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise UserError(f"{where} is not a .flo file: magic number {magic!r}, expected {FLO_MAGIC}")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, 4))
    if not (1 <= width <= _FLO_MAX_SIDE and 1 <= height <= _FLO_MAX_SIDE):
        raise UserError(f"{where} has an absurd size {width}x{height} (each side must be 1..{_FLO_MAX_SIDE})")
    expected = 12 + width * height * 8
    if len(data) < expected:
        raise UserError(f"{where} is truncated: {len(data)} bytes, a {width}x{height} flow needs {expected}")
    if len(data) > expected:
        raise UserError(f"{where} has {len(data) - expected} unexpected bytes after the {width}x{height} flow")
    flow = np.frombuffer(data, "<f4", width * height * 2, 12).reshape(height, width, 2)
    flow = flow.astype(np.float32)  # native byte order, writable copy
    flow[~valid_flow(flow)] = np.nan
    return flow


def valid_flow(flow: np.ndarray) -> np.ndarray:
    """Pixels whose flow is known: both components finite and below Middlebury's "unknown" value.

    Args:
        flow: ``(..., 2)`` flow.

    Returns:
        Boolean ``(...)``; :func:`read_flo` sets the other pixels to NaN, which :func:`warp`
        treats as invalid (no sample, ``valid = 0``).
    """
    with np.errstate(invalid="ignore"):
        return np.isfinite(flow).all(axis=-1) & (np.abs(flow) < FLO_UNKNOWN).all(axis=-1)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a Middlebury ``.flo`` file atomically (temporary file in the same folder, then rename).

    Args:
        path: destination; its folder must exist. An existing file is replaced.
        flow: ``(H, W, 2)`` flow (``u, v`` last); stored as little-endian float32.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)`` or has an unsupported size.
        UserError: the file cannot be written.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    if not (1 <= width <= _FLO_MAX_SIDE and 1 <= height <= _FLO_MAX_SIDE):
        raise ValueError(f"a .flo file holds 1..{_FLO_MAX_SIDE} pixels per side, got {width}x{height}")
    path = Path(path)
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    body = np.ascontiguousarray(flow, dtype="<f4").tobytes()
    try:
        atomic_write_bytes(path, header + body)
    except OSError as err:
        raise UserError(f"cannot write flow file {str(path)!r}: {err.strerror or err}") from None


# -- precomputed files --------------------------------------------------------------------------
def flo_path(root: str | os.PathLike, index: Any, video: Any, frame: int) -> Path:
    """Where the ``.flo`` file of one frame lives in a tree that mirrors the data set's frames.

    A frame file ``DATA_ROOT/<rel>/<name>.<ext>`` maps to ``root/<rel>/<name>.flo``; frames that are
    not files under the data root (video files, generated data) map to
    ``root/<label>/<video id>/<frame name>.flo``. Paths are compared as written, without resolving
    symlinks, so a frame that links to another video's file still gets its own video's place.
    ``wsbench data flow --out`` writes this tree and
    ``--flow files --flow-root`` reads it.

    Args:
        root: the flow tree's root.
        index: the :class:`~wsbench.data.VideoIndex`.
        video: one of its videos.
        frame: frame position in the video.

    Returns:
        The ``.flo`` path (which may not exist).
    """
    paths = getattr(video.frames, "paths", None)
    if paths is not None and index.root is not None:
        # symlinks are not followed: a frame linked from another video keeps its own video's place
        try:
            rel = Path(os.path.abspath(paths[frame])).relative_to(os.path.abspath(index.root))
            return Path(root) / rel.with_suffix(".flo")
        except ValueError:
            pass
    return Path(root) / video.label / video.id / f"{video.frames.names[frame]}.flo"


@register_flow("files", description="precomputed Middlebury .flo files, frame n holding the flow n -> n+1")
class FlowFiles:
    """Flows read from ``.flo`` files instead of estimated (e.g. the SERUSO/WS² authors' flows).

    The file of frame n holds the flow from frame n to frame n+1; the flow from frame n to n−1 is
    the negated file of frame n−1, as in the authors' code (exact for a constant motion, an
    approximation at occlusions). The last frame of a video needs no file. Files are read one at a
    time and resized to the requested resolution with ``u``, ``v`` rescaled (:func:`resize_flow`).

    Args:
        root: a tree mirroring the frames (see :func:`flo_path`); ``None``: the locations the data
            set's layout gives (``Video.flow_files``, e.g. SERUSO's ``optical_flows/``).
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = Path(root).expanduser() if root else None

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Not available: this estimator only reads the files of a data set's frames."""
        raise UserError("flow 'files' reads precomputed .flo files of a data set's frames; "
                        "it cannot estimate the flow between two arbitrary frames")

    def path(self, index: Any, video: Any, frame: int) -> Path:
        """The ``.flo`` file holding the flow from ``frame`` to ``frame + 1``.

        Raises:
            UserError: no ``root`` was given and the data set's layout has no flow files.
        """
        if self.root is not None:
            return flo_path(self.root, index, video, frame)
        if video.flow_files is None:
            raise UserError(f"data set {index.name!r} has no default place for .flo files; "
                            "give --flow-root DIR (a tree written by 'wsbench data flow --out DIR')")
        return Path(video.flow_files[frame])

    def fingerprint(self, index: Any) -> str:
        """Content fingerprint of the ``.flo`` files of ``index`` (path, size, mtime; never the data).

        A flow file rewritten in place changes it, so caches and classifiers built from the old
        files are not reused.
        """
        from ..files import config_hash, file_stat

        stats = []
        for video in index.videos:
            for n in range(len(video) - 1):
                try:
                    path = self.path(index, video, n)
                except UserError:  # no place for flow files: reported when they are read
                    return "none"
                stats.append([os.path.abspath(path), *file_stat(path)[1:]])
        return config_hash(stats, 16)

    def video_flows(self, index: Any, video: Any, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Flows of every frame of ``video`` to its next and previous frame, at ``size``.

        Args:
            index: the data set's index.
            video: the video.
            size: ``(h, w)`` of the returned flows.

        Returns:
            ``(forward, backward)``, each ``float32`` ``(T, h, w, 2)``, zeros where the neighbour
            does not exist, NaN (invalid for :func:`warp`) where a file marks the flow unknown and
            at the resized pixels such a pixel touches (the flow cache counts them in a warning).

        Raises:
            UserError: a missing or malformed ``.flo`` file, or one whose size does not fit its
                frame (:func:`check_flow_size`), named in the message.
        """
        import torch

        t_len = len(video)
        forward = np.zeros((t_len,) + tuple(size) + (2,), np.float32)
        for n in range(t_len - 1):
            path = self.path(index, video, n)
            if not path.is_file():
                raise UserError(f"{path}: flow file missing (the flow from frame {video.frames.names[n]} of "
                                f"{video.key} to the next frame)")
            raw = read_flo(path)
            check_flow_size(path, raw.shape[1::-1], _frame_size(video.frames, n))
            # NaN (unknown) spreads to every resized pixel it touches: those pixels are invalid too
            flow = torch.from_numpy(raw).permute(2, 0, 1)[None]
            forward[n] = resize_flow(flow, size)[0].permute(1, 2, 0).numpy()
        backward = np.zeros_like(forward)
        backward[1:] = -forward[:-1]
        return forward, backward

    def __repr__(self) -> str:
        return f"FlowFiles(root={str(self.root) if self.root else None!r})"


def check_flow_size(path: str | os.PathLike, flow_size: tuple[int, int], frame_size: tuple[int, int]) -> None:
    """Refuse a flow file that cannot be its frame's flow at some resolution.

    A flow may be stored at another resolution than its frame (the authors' flows are; they are
    resized with ``u``, ``v`` rescaled), but at one scale for both sides (within a pixel of
    rounding) and at least an eighth of the frame's sides (the coarsest resolution flow networks
    estimate at): a transposed or a 1×1 flow would otherwise be stretched over the frame silently.

    Args:
        path: the ``.flo`` file (named in the error).
        flow_size: its ``(width, height)``.
        frame_size: the frame's ``(width, height)``.

    Raises:
        UserError: one line naming the file, both sizes and the rule.
    """
    (fw, fh), (w, h) = flow_size, frame_size
    same_scale = abs(fw / w - fh / h) <= 1 / fw + 1 / fh
    if not same_scale or fw * 8 < w or fh * 8 < h:
        raise UserError(f"flow file {str(path)!r} is {fw}x{fh} but its frame is {w}x{h}: a flow must have the "
                        "frame's size or the same shape at another scale (at least 1/8 of each side)")


def _frame_size(frames: Any, index: int) -> tuple[int, int]:
    """``(width, height)`` of one frame: from the frame source's header when it can tell, else decoded."""
    if hasattr(frames, "frame_size"):
        width, height = frames.frame_size(index)
        return width, height
    height, width = frames.read(index).shape[:2]
    return width, height


def write_flo_tree(index: Any, estimator: Any, out: str | os.PathLike, desc: str = "flow") -> int:
    """Write the flow of every frame to the next one as ``.flo`` files under ``out`` (:func:`flo_path`).

    The file of frame n holds the flow n -> n+1 at the frame's own resolution; the last frame of a
    video gets none. ``--flow files --flow-root out`` (:class:`FlowFiles`) reads the tree back.
    One progress bar over the videos, under the switch of :mod:`wsbench.progress`.

    Args:
        index: the :class:`~wsbench.data.VideoIndex` whose frames are read.
        estimator: a :class:`~wsbench.flow.FlowEstimator`, called on one pair at a time.
        out: the tree's root (created as needed; existing files are replaced).
        desc: label of the progress bar.

    Returns:
        The number of files written.

    Raises:
        UserError: a file cannot be written (named in the message).
    """
    from tqdm.auto import tqdm

    from ..progress import show_progress

    written = 0
    for video in tqdm(index.videos, desc=desc, unit="video", disable=not show_progress()):
        previous = None
        for n, frame in enumerate(video.frames):
            if previous is not None:
                path = flo_path(out, index, video, n - 1)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_flo(path, estimator(previous[None], frame[None])[0])
                written += 1
            previous = frame
    return written
