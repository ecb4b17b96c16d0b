"""On-disk caches of a data set at training resolution: frames, foreground masks, optical flow.

Large real frames are never held in memory: each frame is decoded once, resized to the training
resolution and written to a memory-mapped ``.npy`` file; training reads slices of it. Foreground
masks (background removal) are stored at training resolution for the training images and as PNG
at analysis resolution for evaluation at frame size. Optical flow is computed once per data set,
resolution and estimator, and training never recomputes it.

Layout::

    CACHE_DIR/<dataset>-<hash of the data fingerprint and cache version>/<w>x<h>-<background rule>/
                                    (rule: bg<threshold>-m<morph>, lab<delta E>-m<morph>, + -otsu)
        meta.json                   videos, their slice of the arrays, original frame sizes (and,
                                    under a rule other than the paper's, each video's threshold)
        frames.npy                  (N, h, w, 3) uint8, original frames (with background)
        fg.npy                      (N, h, w) uint8, 1 = foreground
        fg/<video>/<frame>.png      foreground at analysis resolution (evaluation)
        flow-<name>-<hash>.npy      (N, 2, 2, h/4, w/4) float16: [:, 0] flow to t+1, [:, 1] to t-1;
                                    the hash covers the estimator's options and, for .flo files,
                                    their content fingerprint

Every artefact is built in a temporary location and renamed into place, so an interrupted build
leaves nothing half-written and two processes building the same cache do not corrupt it; the
temporary builds carry their owner and are cleaned up as :mod:`wsbench.data.builds` says.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from ..files import atomic_write_json, chmod_as_new, config_hash, reserve_space, write_image
from ..progress import show_progress
from ..recipes import Recipe
from ..schema import AnyValue, Int, ListOf, Record, load_json
from . import background as bg
from .builds import build_owner, remove_stale_builds, terminate_as_exit
from .index import Video, VideoIndex

__all__ = ["FLOW_STRIDE", "PreparedData", "VideoSlice", "frame_arrays", "prepare", "remove_stale_builds",
           "resolve_cache_dir"]

CACHE_ENV = "WSBENCH_CACHE_DIR"
#: flows are stored at 1/FLOW_STRIDE of the training resolution (≥ 2× the features at stride 8)
FLOW_STRIDE = 4
#: 2: the data fingerprint resolves the root; frames ignore EXIF orientation
_VERSION = 2


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``path``, else ``$WSBENCH_CACHE_DIR``, else ``~/.cache/wsbench``."""
    if path:
        return Path(path).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wsbench"


@dataclasses.dataclass(frozen=True)
class VideoSlice:
    """Where a video's frames sit in the cache arrays.

    Attributes:
        start: index of its first frame in ``frames.npy``.
        length: number of frames.
        frame_size: original ``(width, height)`` of its frames.
    """

    start: int
    length: int
    frame_size: tuple[int, int]

    @property
    def stop(self) -> int:
        """One past its last frame."""
        return self.start + self.length


_META_SCHEMA = Record({"videos": ListOf(Record({"start": Int(0), "length": Int(1),
                                                "frame_size": ListOf(Int(1), length=2)},
                                               required=("start", "length", "frame_size"), extra=AnyValue()))},
                     required=("videos",), extra=AnyValue())


class PreparedData:
    """A data set ready for training and evaluation: its index plus the cached arrays.

    Attributes:
        index: the :class:`VideoIndex` (videos in the same order as ``slices``).
        path: the cache folder.
        image_size: training resolution ``(w, h)``.
        bg_threshold: background-removal threshold used.
        bg_morph: side of the background-removal opening/closing square (≤ 1: none).
        background_rule: the whole background rule (:class:`~wsbench.data.background.BackgroundRule`).
        bg_thresholds: each video's threshold (differs from the rule's only under ``otsu``).
        frames: memory-mapped (N, h, w, 3) uint8 original frames.
        fg: memory-mapped (N, h, w) uint8 foreground masks.
        slices: one :class:`VideoSlice` per video.
        timings: seconds spent building caches in this process (``frames``, ``flow``).
    """

    def __init__(self, index: VideoIndex, path: Path, image_size: tuple[int, int], bg_threshold: float,
                 bg_morph: int = bg.DEFAULT_MORPH, background_rule: bg.BackgroundRule | None = None) -> None:
        self.index = index
        self.path = path
        self.image_size = image_size
        self.bg_threshold = bg_threshold
        self.bg_morph = bg_morph
        self.background_rule = background_rule or bg.BackgroundRule(threshold=bg_threshold, morph=bg_morph)
        hint = f"delete {path} to rebuild the cache"
        meta = load_json(path / "meta.json", _META_SCHEMA, "cache index", hint=hint)
        self.slices = [VideoSlice(s["start"], s["length"], tuple(s["frame_size"])) for s in meta["videos"]]
        self.bg_thresholds = [float(s.get("bg_threshold", self.bg_threshold)) for s in meta["videos"]]
        try:
            self.frames = np.load(path / "frames.npy", mmap_mode="r")
            self.fg = np.load(path / "fg.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: unreadable cache arrays ({type(err).__name__}); {hint}") from None
        expected = sum(s.length for s in self.slices)
        if len(self.slices) != len(index.videos) or len(self.frames) != expected or len(self.fg) != expected:
            raise UserError(f"{path / 'meta.json'}: cache index does not match its arrays or the data set; {hint}")
        self.timings: dict[str, float] = {"frames": 0.0, "flow": 0.0}
        self._flows: dict[str, np.ndarray] = {}

    @property
    def num_frames(self) -> int:
        """Total number of frames."""
        return int(self.frames.shape[0])

    def video_position(self, video: Video) -> int:
        """Position of ``video`` in ``index.videos``."""
        for i, v in enumerate(self.index.videos):
            if v is video:
                return i
        raise KeyError(video.key)

    def fg_full(self, video_pos: int, frame: int) -> np.ndarray:
        """Foreground mask of one frame at its original size (bool), for evaluation."""
        path = self.path / "fg" / str(video_pos) / f"{frame}.png"
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise UserError(f"{path}: cache file missing; delete {self.path} to rebuild the cache")
        w, h = self.slices[video_pos].frame_size
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return mask > 0

    @property
    def flow_size(self) -> tuple[int, int]:
        """``(w, h)`` at which flows are stored."""
        w, h = self.image_size
        return max(1, w // FLOW_STRIDE), max(1, h // FLOW_STRIDE)

    def flows(self, name: str = "dis", **options: Any) -> np.ndarray:
        """Flows of every frame to its neighbours, computed once and cached on disk.

        Args:
            name: registered flow estimator.
            **options: estimator options (part of the cache key).

        Returns:
            Memory-mapped (N, 2, 2, h/4, w/4) float16: ``[n, 0]`` is the flow from frame n to
            frame n+1, ``[n, 1]`` to frame n-1 (zeros where the neighbour does not exist), in
            pixels of the stored resolution, with the convention of :mod:`wsbench.flow`.
        """
        from ..flow import flow_fingerprint

        content = flow_fingerprint(name, options, self.index)  # .flo files rewritten in place: a new key
        key = f"flow-{name}-{config_hash({'name': name, 'options': options, 'v': _VERSION, 'content': content}, 8)}"
        if key in self._flows:
            return self._flows[key]
        target = self.path / f"{key}.npy"
        if not target.exists():
            start = time.perf_counter()
            with terminate_as_exit():
                self._build_flows(target, name, options)
            self.timings["flow"] += time.perf_counter() - start
        self._flows[key] = np.load(target, mmap_mode="r")
        return self._flows[key]

    def _build_flows(self, target: Path, name: str, options: dict) -> None:
        import torch
        from tqdm.auto import tqdm

        from ..flow import create_flow, estimate_video_flows, resize_flow

        estimator = create_flow(name, **options)
        fw, fh = self.flow_size
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.{build_owner()}.", suffix=".npy", dir=self.path)
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(self.num_frames, 2, 2, fh, fw))
            reserve_space([Path(tmp)], f"the {name} flow cache")
            video_flows = getattr(estimator, "video_flows", None)  # estimators that read files, not frames
            unknown: dict[str, int] = {}  # video → flow vectors marked unknown (NaN)
            for pos, s in enumerate(tqdm(self.slices, desc=f"flow ({name})", unit="video", leave=False,
                                         disable=not show_progress())):
                if video_flows is not None:
                    to_next, to_prev = video_flows(self.index, self.index.videos[pos], (fh, fw))
                else:
                    frames = np.asarray(self.frames[s.start:s.stop])
                    to_next, to_prev = estimate_video_flows(frames, estimator)
                bad = int(np.isnan(to_next).any(axis=-1).sum() + np.isnan(to_prev).any(axis=-1).sum())
                if bad:
                    unknown[self.index.videos[pos].key] = bad
                for d, flow in enumerate((to_next, to_prev)):
                    t = torch.from_numpy(np.ascontiguousarray(flow)).permute(0, 3, 1, 2)
                    out[s.start:s.stop, d] = resize_flow(t, (fh, fw)).numpy().astype(np.float16)
            out.flush()
            del out
            chmod_as_new(tmp)
            os.replace(tmp, target)
            if unknown:
                warnings.warn(f"flow {name!r}: {sum(unknown.values())} flow vector(s) in {len(unknown)} video(s) "
                              f"(e.g. {next(iter(unknown))}) are unknown (NaN, or |value| >= 1e9 in a .flo file); "
                              "they count as invalid: no temporal constraint or stability comparison there",
                              stacklevel=2)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def prepare(index: VideoIndex, image_size: tuple[int, int], cache_dir: str | os.PathLike | None = None,
            workers: int | None = None, background: Recipe | None = None) -> PreparedData:
    """Build (or reuse) the frame and foreground caches of ``index`` at ``image_size``.

    Args:
        index: the data set.
        image_size: training resolution ``(w, h)``; frames are resized to it (aspect not kept,
            as in the paper's 512×512 inputs).
        cache_dir: cache root (see :func:`resolve_cache_dir`).
        workers: threads decoding videos in parallel (default: up to 4, one per core).
        background: the recipe whose ``bg_*`` fields are the background rule
            (:class:`~wsbench.data.background.BackgroundRule`; default: the paper's rule).

    Returns:
        The prepared data set.
    """
    root = resolve_cache_dir(cache_dir)
    w, h = image_size
    data_key = config_hash({"data": index.fingerprint(), "v": _VERSION}, 16)
    rule = bg.BackgroundRule() if background is None else bg.BackgroundRule.of(background)
    path = root / f"{index.name}-{data_key}" / f"{w}x{h}-{rule.cache_name()}"
    remove_stale_builds(root)
    start = time.perf_counter()
    built = False
    if not (path / "meta.json").exists():
        with terminate_as_exit():
            _build(index, path, image_size, rule, workers)
        built = True
    data = PreparedData(index, path, image_size, rule.threshold, rule.morph, rule)
    if built:
        data.timings["frames"] = time.perf_counter() - start
    return data


def _build(index: VideoIndex, path: Path, image_size: tuple[int, int], rule: bg.BackgroundRule,
           workers: int | None) -> None:
    from tqdm.auto import tqdm

    if not index.videos:
        raise UserError(f"data set {index.name!r} has no videos")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{build_owner()}.", dir=path.parent))
    stop = threading.Event()  # set on any exception: the worker threads stop after their current frame
    try:
        chmod_as_new(tmp, folder=True)  # renamed into place below: a normal folder, not mkdtemp's 0700
        w, h = image_size
        starts = np.cumsum([0] + [len(v) for v in index.videos])
        n = int(starts[-1])
        frames = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
        fg = np.lib.format.open_memmap(tmp / "fg.npy", mode="w+", dtype=np.uint8, shape=(n, h, w))
        reserve_space([tmp / "frames.npy", tmp / "fg.npy"], "the frame cache")

        def one(pos: int, frames: np.ndarray = frames, fg: np.ndarray = fg) -> tuple[tuple[int, int], float]:
            return _build_video(index.videos[pos], tmp / "fg" / str(pos), int(starts[pos]), frames, fg,
                                image_size, rule, stop)

        workers = workers or min(4, os.cpu_count() or 1)
        sizes: dict[int, tuple[tuple[int, int], float]] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(one, i): i for i in range(len(index.videos))}
            for fut in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="caching frames",
                            unit="video", leave=False, disable=not show_progress()):
                sizes[futures[fut]] = fut.result()
        except BaseException:
            stop.set()
            raise
        finally:  # waits for the running videos (one frame each once stopped), never starts the queued ones
            pool.shutdown(wait=True, cancel_futures=True)
        frames.flush()
        fg.flush()
        del one, frames, fg  # closes the memmaps before the folder is renamed
        meta = {
            "version": _VERSION,
            "dataset": index.name,
            "image_size": [w, h],
            "bg_threshold": rule.threshold,
            "bg_morph": rule.morph,
            **({} if rule.paper else {"bg_rule": rule.rule, "bg_lab_threshold": rule.lab_threshold,
                                      "bg_threshold_mode": rule.threshold_mode}),
            "videos": [{"key": v.key, "start": int(starts[i]), "length": len(v), "frame_size": list(sizes[i][0]),
                        **({} if rule.paper else {"bg_threshold": sizes[i][1]})}
                       for i, v in enumerate(index.videos)],
        }
        atomic_write_json(tmp / "meta.json", meta)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").exists():  # not a concurrent build that won the race
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build_video(video: Video, fg_dir: Path, start: int, frames: np.ndarray, fg: np.ndarray,
                 image_size: tuple[int, int], rule: bg.BackgroundRule,
                 stop: threading.Event | None = None) -> tuple[tuple[int, int], float]:
    """Resize and background-remove one video; returns its original frame size and its threshold (stops when
    ``stop`` is set)."""
    fg_dir.mkdir(parents=True)
    n = len(video)
    sample = set(np.linspace(0, n - 1, min(n, bg.MEDIAN_FRAMES)).round().astype(int).tolist())
    # the median is taken over evenly spaced frames, so memory does not grow with video length
    images, size, asize = [], None, None
    for i in sorted(sample):
        frame = video.frames.read(i)
        size = _check_size(video, i, frame, size)
        asize = asize or bg.analysis_size(*size)
        images.append(rule.convert(frame, asize))
    background = rule.fit(images)
    del images
    for i, frame in enumerate(video.frames):
        if stop is not None and stop.is_set():
            raise _Stopped
        _check_size(video, i, frame, size)
        frames[start + i], fg[start + i], mask = frame_arrays(frame, background, image_size)
        write_image(fg_dir / f"{i}.png", mask * 255)
    assert size is not None
    return size, background.threshold


class _Stopped(Exception):
    """A worker thread's video was abandoned because the build failed or was interrupted elsewhere."""


def frame_arrays(frame: np.ndarray, background: bg.VideoBackground,
                 image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame as the caches hold it: resized frame and foreground, and the analysis-size foreground.

    Args:
        frame: RGB uint8 frame at its original size.
        background: its video's background (median belt, rule and threshold).
        image_size: training resolution ``(w, h)``.

    Returns:
        ``(frame (h, w, 3) uint8, foreground (h, w) uint8 0/1 at training resolution,
        foreground uint8 0/1 at the analysis size)``.
    """
    mask = background.mask(frame)
    small = cv2.resize(mask * 255, image_size, interpolation=cv2.INTER_AREA)
    return cv2.resize(frame, image_size, interpolation=cv2.INTER_AREA), (small > 127).astype(np.uint8), mask


def _check_size(video: Video, i: int, frame: np.ndarray, size: tuple[int, int] | None) -> tuple[int, int]:
    got = (frame.shape[1], frame.shape[0])
    if size is not None and got != size:
        paths = getattr(video.frames, "paths", None)
        name = paths[i] if paths else f"{video.key}/{video.frames.names[i]}"
        raise UserError(f"{name}: frame is {got[0]}x{got[1]}, the video's first frame "
                        f"{size[0]}x{size[1]}; frames of one video must share a size")
    return got

