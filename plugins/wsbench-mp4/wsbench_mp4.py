"""``mp4-folder``: a data set of video files, one per camera recording, decoded with OpenCV.

Layout (the video-folder layout with one file where video-folder has a folder of frames)::

    ROOT/
      before/<recording>.mp4                        any container OpenCV reads (.mp4, .avi, .mkv, ...)
      after/<recording>.mp4
      masks/before/<recording>/<recording>_<n>.png  optional GT of frame number n (6 digits, from 0)
      splits.json                                   optional {"train": [ids], "val": [...], "test": [...]}

Each file is one video, or, with the ``segment_seconds`` option, one video per consecutive
segment of that length (ids ``<recording>-000``, ``<recording>-001``, ...): the form to use when
each camera is one long recording. A last segment shorter than half the length is dropped.
Frame names keep the file's frame numbers, so mask names do not depend on segmentation.
``stride`` keeps every n-th frame of high-frame-rate recordings; masks of frames it skips are not
used, and a mask whose frame number the file does not have is an error. Splits work as in video-folder
(``splits.json`` ids are video ids; without it a seeded 80/20 split by video); note that adjacent
segments of one recording look alike, so list them in ``splits.json`` by recording if they must
not be divided between train and test.

Options, given on the command line as ``wsbench run --dataset mp4-folder --data-root ROOT
--dataset-option segment_seconds=10 --dataset-option stride=2``.
"""

from __future__ import annotations

import math
from pathlib import Path

from wsbench.data import LABELS, Video, VideoIndex, register_dataset
from wsbench.data.index import assign_splits, read_splits_file
from wsbench.data.io import natural_key
from wsbench.data.video import VideoFile, is_video_file
from wsbench.data.video_folder import attach_masks, check_unmatched, find_masks
from wsbench.errors import UserError

__all__ = ["mp4_folder", "recording_videos"]


@register_dataset("mp4-folder", description="one video file per before/after recording, optionally cut into "
                                            "segments (plugin)")
def mp4_folder(root: Path, split_seed: int = 0, segment_seconds: float | None = None, stride: int = 1) -> VideoIndex:
    """Index a folder of before/after video files.

    Args:
        root: the data set folder (see the module docstring for its layout).
        split_seed: seed of the 80/20 split by video when there is no ``splits.json``.
        segment_seconds: cut each recording into videos of this many seconds (``None``: one
            video per file).
        stride: keep every ``stride``-th frame.

    Returns:
        The index with splits assigned.

    Raises:
        UserError: a missing folder, a folder without video files, an unreadable video, a bad
            option, a mask whose frame number its file does not have, or recordings all shorter
            than half a segment.
    """
    root = Path(root)
    try:
        seconds = None if segment_seconds is None else float(segment_seconds)
        step = int(stride)
    except (TypeError, ValueError):
        raise UserError(f"data set 'mp4-folder': segment_seconds must be a number and stride an integer "
                        f"(got {segment_seconds!r}, {stride!r})") from None
    if seconds is not None and seconds <= 0:
        raise UserError(f"data set 'mp4-folder': segment_seconds must be positive, not {seconds}")
    if step < 1:
        raise UserError(f"data set 'mp4-folder': stride must be at least 1, not {step}")
    if not root.is_dir():
        raise UserError(f"{root}: data root not found (expected a folder with before/ and after/)")
    videos: list[Video] = []
    for label in LABELS:
        folder = root / label
        files = sorted((p for p in folder.iterdir() if p.is_file() and is_video_file(p)),
                       key=lambda p: natural_key(p.name)) if folder.is_dir() else []
        if not files:
            raise UserError(f"{folder}: no video files (expected {folder}/<recording>.mp4)")
        for path in files:
            recording = recording_videos(path, label, seconds, step)
            masks = find_masks(root / "masks" / label / path.stem)
            for video in recording:
                attach_masks(video, masks)
            if masks:  # masks of frames left out by stride or a dropped last segment are fine; others not
                frames = set(VideoFile(path).names)
                check_unmatched(masks, frames & set(masks), f"recording {label}/{path.name}")
            videos.extend(recording)
        if not any(v.label == label for v in videos):
            raise UserError(f"{folder}: every recording is shorter than half of segment_seconds={seconds}")
    splits_path = root / "splits.json"
    splits = read_splits_file(splits_path) if splits_path.exists() else None
    videos = assign_splits(videos, splits, seed=split_seed, source=str(splits_path))
    info = {"splits": "splits.json" if splits else f"seeded 80/20 by video (split_seed={split_seed})",
            "segment_seconds": seconds, "stride": step}
    return VideoIndex(name="mp4-folder", root=root, videos=videos, info=info)


def recording_videos(path: Path, label: str, segment_seconds: float | None = None, stride: int = 1) -> list[Video]:
    """The videos of one recording: the whole file, or its consecutive segments.

    Args:
        path: the video file.
        label: ``"before"`` or ``"after"``.
        segment_seconds: segment length in seconds of the recording (``None``: the whole file).
        stride: keep every ``stride``-th frame.

    Returns:
        One :class:`~wsbench.data.Video` per file or segment, in temporal order.
    """
    whole = VideoFile(path, stride=stride)
    if segment_seconds is None:
        return [Video(label=label, id=path.stem, frames=whole)]
    per_segment = max(1, math.ceil(segment_seconds * whole.fps / stride))  # kept frames per segment
    videos = []
    for k, first in enumerate(range(0, len(whole), per_segment)):
        kept = min(per_segment, len(whole) - first)
        if kept * 2 < per_segment:
            break
        frames = VideoFile(path, stride=stride, max_frames=kept, start=first * stride)
        videos.append(Video(label=label, id=f"{path.stem}-{k:03d}", frames=frames))
    return videos
