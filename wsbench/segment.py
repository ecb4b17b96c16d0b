"""Segment a video file or a frame folder with a finished run, streaming (``wsbench segment``).

Frames are read one at a time, processed in small batches and written as soon as they are done;
what stays in memory is bounded by the batch size and the run's fusion window, never by the
video's length:

1. **Background.** A new video has no data-set median background, so the background is the
   pixel-wise median (grey, or CIELAB under the ``lab`` rule) of the first ``bg_frames`` frames
   (64 by default) of the stream, at the analysis resolution (≤ 1024 px a side,
   :mod:`wsbench.data.background`), read in a first pass over the source; the data set caches
   instead use 64 frames spread over the whole video. Each frame's foreground then comes from the
   run's background rule (``bg_rule``, its threshold and cleaning) as in the caches. Foreground
   both feeds the classifier (if the run's recipe removes the background) and separates legal
   objects from the belt in the masks.
2. **Maps.** Frames are resized to the training resolution and the run's method gives their maps,
   ``batch_size`` frames per forward pass.
3. **Fusion.** If the run fused maps at inference (``--fuse-neighbours`` or ``f2f``), the same
   fusion runs here (:class:`wsbench.maps.StreamFusion`): flows between consecutive frames come from
   the run's flow estimator on the fly (DIS for runs that read precomputed ``.flo`` files), at the
   cached flows' resolution (none for unwarped fusion), and frame t is emitted once frame t+k has
   been read (k frames of latency; none for causal fusion), fused over the window t−k … t+k held in
   a ring buffer. The result equals :func:`wsbench.maps.fuse_maps` on the whole video.
4. **Masks.** Maps are upsampled to frame size (:func:`wsbench.maps.upsample`) and cut at the run's
   val-chosen threshold: :func:`wsbench.masks.label_mask` (0 belt, 1 legal, 2 illegal).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from .data import background as bg
from .data.cache import frame_arrays
from .data.io import ImageFiles, image_files
from .data.video import VideoFile, is_video_file
from .errors import UserError
from .files import atomic_write_json, video_writer, write_image
from .inference import TrainedRun, overlay, run_summary, write_classes
from .maps import StreamFusion, upsample
from .masks import CLASSES, label_mask
from .progress import show_progress

if TYPE_CHECKING:
    from .distill import DistilledRun

__all__ = ["SegmentOptions", "SegmentedFrame", "check_segment_options", "open_source", "segment_file", "segment_stream",
           "segmenter_stream", "stream_background"]

#: the highest overlay video frame rate accepted
MAX_FPS = 1000.0


@dataclasses.dataclass
class SegmentedFrame:
    """One output of :func:`segment_stream`.

    Attributes:
        index: position in the stream.
        frame: the input frame, RGB uint8 (H, W, 3).
        mask: (H, W) uint8 labels, 0 background, 1 legal, 2 illegal.
    """

    index: int
    frame: np.ndarray
    mask: np.ndarray


def _same_size(frame: np.ndarray, size: tuple[int, int] | None, index: int) -> tuple[int, int]:
    """``(width, height)`` of frame ``index``; a :class:`UserError` unless it is ``size`` (the first frame's)."""
    got = (frame.shape[1], frame.shape[0])
    if size is not None and got != size:
        raise UserError(f"frame {index} is {got[0]}x{got[1]}, the first frame {size[0]}x{size[1]}; "
                        "frames of one video must share a size")
    return got


def open_source(path: str | Path) -> Any:
    """The frames of ``path``: a video file (MP4, AVI, … via OpenCV) or a folder of images.

    Returns:
        A :class:`~wsbench.data.io.FrameSource` (:class:`VideoFile` or :class:`ImageFiles`,
        natural sort of the names); both can be iterated more than once.

    Raises:
        UserError: missing path, a folder without images, or an unknown file type.
    """
    path = Path(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise UserError(f"{path}: no image files in the folder")
        return ImageFiles(files)
    if not path.exists():
        raise UserError(f"{path}: not found")
    if not is_video_file(path):
        raise UserError(f"{path}: not a video file or a folder of frames")
    return VideoFile(path)


def stream_background(frames: Iterable[np.ndarray], count: int = bg.MEDIAN_FRAMES,
                      rule: bg.BackgroundRule | None = None) -> bg.VideoBackground:
    """Median background of the first ``count`` frames at the analysis size, under a run's rule.

    Args:
        frames: RGB uint8 frames; only the first ``count`` are read.
        count: how many frames the median is taken over.
        rule: the run's background rule (:meth:`~wsbench.data.background.BackgroundRule.of` its
            recipe; ``None``: the paper's rule with its defaults).

    Returns:
        The stream's :class:`~wsbench.data.background.VideoBackground` (median belt and threshold).

    Raises:
        UserError: no frames.
    """
    if count < 1:
        raise UserError("--bg-frames must be at least 1")
    rule = rule or bg.BackgroundRule()
    images, asize = [], None
    for frame in itertools.islice(frames, count):
        asize = asize or bg.analysis_size(frame.shape[1], frame.shape[0])
        images.append(rule.convert(frame, asize))
    if not images:
        raise UserError("the input has no frames")
    return rule.fit(images)


def segment_stream(trained: TrainedRun, frames: Iterable[np.ndarray], background: bg.VideoBackground,
                   batch_size: int = 8) -> Iterator[SegmentedFrame]:
    """Masks of a stream of frames, produced lazily.

    At most ``batch_size + 2k`` frames (k = the run's fusion neighbours) are held at once;
    a frame is yielded as soon as its fusion window is complete (at once for causal fusion).

    Args:
        trained: the run.
        frames: RGB uint8 frames of one size, in temporal order (any iterable, e.g. a generator).
        background: the stream's background (:func:`stream_background`).
        batch_size: frames per forward pass.

    Yields:
        :class:`SegmentedFrame` in input order.

    Raises:
        UserError: frames of different sizes.
    """
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    window = StreamFusion(trained.fusion, trained.recipe.flow, trained.recipe.image_size)
    size: tuple[int, int] | None = None
    source = iter(frames)
    done = False
    while not done:
        batch: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # frame, small, fg, fg small
        for frame in itertools.islice(source, batch_size):
            size = _same_size(frame, size, window.read + len(batch))
            small, fg_small, fg = frame_arrays(frame, background, trained.recipe.image_size)
            batch.append((frame, small, fg, fg_small))
        done = len(batch) < batch_size
        if batch:
            maps = trained.producer.batch(np.stack([b[1] for b in batch]), np.stack([b[3] for b in batch]))
            for (image, small, fg, _), m in zip(batch, maps, strict=True):
                window.add((image, fg), small, m)  # fg: the foreground at the analysis size
        for index, (image, fg), fused in window.ready(done):
            assert size is not None
            fg_full = cv2.resize(fg, size, interpolation=cv2.INTER_NEAREST) > 0
            yield SegmentedFrame(index, image, label_mask(upsample(fused, size), fg_full, trained.threshold))


def segmenter_stream(trained: Any, frames: Iterable[np.ndarray], batch_size: int = 8) -> Iterator[SegmentedFrame]:
    """Masks of a stream of frames from a distilled segmenter: one forward pass per frame, no flow, no background.

    Frames are resized to the segmenter's resolution, its class probabilities upsampled bilinearly
    to frame size and cut by :meth:`~wsbench.distill.DistilledRun.label_masks` (illegal where its
    probability reaches the run's val-chosen threshold, else the likelier of belt and legal).

    Args:
        trained: a :class:`~wsbench.distill.DistilledRun`.
        frames: RGB uint8 frames of one size, in temporal order.
        batch_size: frames per forward pass.

    Yields:
        :class:`SegmentedFrame` in input order.
    """
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    source = iter(frames)
    size: tuple[int, int] | None = None
    index = 0
    while True:
        batch = list(itertools.islice(source, batch_size))
        if not batch:
            return
        for frame in batch:
            size = _same_size(frame, size, index)
        assert size is not None
        small = np.stack([cv2.resize(f, trained.image_size, interpolation=cv2.INTER_AREA) for f in batch])
        probs = trained.probabilities(small)
        full = torch.nn.functional.interpolate(probs, size=(size[1], size[0]), mode="bilinear", align_corners=False)
        masks = trained.label_masks(full.numpy())
        for frame, mask in zip(batch, masks, strict=True):
            yield SegmentedFrame(index, frame, mask)
            index += 1


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """How :func:`segment_file` reads its input and what it writes besides the masks.

    Attributes:
        overlay_video: also write the overlay (illegal objects tinted red) as a video
            (``.avi``: MJPG, anything else: MP4V).
        save_overlays: write each overlay frame as a PNG (``overlay/<frame>.png``).
        bg_frames: frames the median background is taken over.
        batch_size: frames per forward pass.
        fps: overlay video frame rate (default: the input video's, 10 for a frame folder).
        overwrite: replace an existing overlay video.

    Raises:
        UserError: one line naming the option and what is wrong.
    """

    overlay_video: str | Path | None = None
    save_overlays: bool = False
    bg_frames: int = bg.MEDIAN_FRAMES
    batch_size: int = 8
    fps: float | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.bg_frames < 1:
            raise UserError("--bg-frames must be at least 1")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.fps is not None and not (math.isfinite(self.fps) and 0 < self.fps <= MAX_FPS):
            raise UserError(f"--fps must be above 0 and at most {MAX_FPS:g}, not {self.fps:g}")


def check_segment_options(source: str | Path, out: str | Path, options: SegmentOptions = SegmentOptions()) -> None:
    """Check the outputs of :func:`segment_file` before anything is read or written.

    ``out`` must be a new or empty folder and the overlay video a ``.mp4``/``.avi`` file that does
    not exist yet (unless ``options.overwrite``); neither may be the input or inside it.

    Raises:
        UserError: one line naming the option and what is wrong.
    """
    from .files import VIDEO_SUFFIXES, check_output

    out = check_output(out, "--out", "dir", inputs=[source], empty=True)
    if options.overlay_video is not None:
        check_output(options.overlay_video, "--overlay-video", inputs=[source], overwrite=options.overwrite,
                     suffixes=VIDEO_SUFFIXES)


def segment_file(trained: TrainedRun | DistilledRun, source: str | Path, out: str | Path,
                 options: SegmentOptions = SegmentOptions()) -> dict[str, Any]:
    """Segment a video file or frame folder, writing masks (and overlays) as frames are done.

    Args:
        trained: the run (a CAM run, or a distilled segmenter: :func:`wsbench.distill.load_distilled`).
        source: video file or folder of frames.
        out: output folder: ``masks/<frame>.png`` (0 background, 1 legal, 2 illegal),
            ``classes.json``/``classes.txt``, ``segment.json``; ``overlay/<frame>.png`` too with
            ``options.save_overlays``.
        options: background frames, batch size and the overlays to write.

    Returns:
        The content of ``segment.json``.

    Raises:
        UserError: an output :func:`check_segment_options` refuses, an unreadable input, or a
            file that cannot be written.
    """
    from .files import check_output, removed_on_failure

    check_segment_options(source, out, options)
    out = check_output(out, "--out", "dir", inputs=[trained.record.path])  # nor inside the run
    with removed_on_failure(out, [options.overlay_video]):  # a failed command leaves nothing that blocks its retry
        return _segment_file(trained, source, out, options)


def _segment_file(trained: TrainedRun | DistilledRun, source: str | Path, out: Path,
                  options: SegmentOptions) -> dict[str, Any]:
    from tqdm.auto import tqdm

    frames = open_source(source)
    mask_dir = out / "masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    if options.save_overlays:
        (out / "overlay").mkdir(exist_ok=True)
    from .distill import DistilledRun

    distilled = isinstance(trained, DistilledRun)  # a segmenter: no background model, no flow
    if isinstance(trained, DistilledRun):  # streams are generators: they start in the loop below
        stream = segmenter_stream(trained, iter(frames), options.batch_size)
    else:
        background = stream_background(iter(frames), options.bg_frames, bg.BackgroundRule.of(trained.recipe))
        stream = segment_stream(trained, iter(frames), background, options.batch_size)
    rate = options.fps or getattr(frames, "fps", None) or 10.0
    video = options.overlay_video
    writer = None
    counts = np.zeros(len(CLASSES), np.int64)
    n = 0
    try:
        for item in tqdm(stream, total=len(frames),
                         desc="segment", unit="frame", leave=False, disable=not show_progress()):
            name = frames.names[item.index]
            write_image(mask_dir / f"{name}.png", item.mask)
            counts += np.bincount(item.mask.ravel(), minlength=len(CLASSES))
            n += 1
            if video is None and not options.save_overlays:
                continue
            shown = cv2.cvtColor(overlay(item.frame, item.mask), cv2.COLOR_RGB2BGR)
            if options.save_overlays:
                write_image(out / "overlay" / f"{name}.png", shown)
            if video is not None:
                if writer is None:
                    Path(video).parent.mkdir(parents=True, exist_ok=True)
                    writer = video_writer(video, rate, (shown.shape[1], shown.shape[0]))
                writer.write(shown)
    finally:
        if writer is not None:
            writer.release()
    if writer is not None and video is not None and not (Path(video).is_file() and Path(video).stat().st_size > 0):
        raise UserError(f"{video}: OpenCV wrote no video (is the disk full?)")  # VideoWriter.write is silent
    write_classes(out)
    own = trained.summary() if isinstance(trained, DistilledRun) else run_summary(trained)
    # new frames are the point here: say so, and which data the run was trained and scored on
    summary = {**own, "input": str(source), "input_is_new_data": True,
               "run_data_fingerprint": trained.record.config.get("data_fingerprint"), "frames": n,
               "bg_frames": None if distilled else options.bg_frames,
               "overlay_video": str(video) if video else None, "fps": rate,
               "pixels": {name: int(c) for name, c in zip(CLASSES, counts, strict=True)}}
    atomic_write_json(out / "segment.json", summary)
    return summary

