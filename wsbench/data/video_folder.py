"""The ``video-folder`` layout, which every other on-disk layout is brought to or read like::

    ROOT/
      before/<video_id>/<frame files>      temporal order = natural sort of the names
      before/<recording>.mp4               or a video file: any format OpenCV decodes (.mp4, .avi, .mkv, ...)
      after/<video_id>/<frame files>       (the same for after; folders and files may be mixed)
      masks/before/<video_id>/<stem>.png   optional GT (object where a channel ≥ 128, or 0/1 labels), evaluation only;
                                           for a video file <stem> is <recording>_<n>, n its frame number (000000, ...)
      splits.json                          optional {"train": [ids], "val": [...], "test": [...]}

Frames may be PNG or JPEG (any image format OpenCV reads), of any size, named with a number
anywhere in the name (gaps allowed). Files that are neither images nor videos are skipped with a
warning inside a video's folder, ignored beside them.

A video file is one video, or with ``segment_seconds`` one video per consecutive segment of that
length (ids ``<recording>-000``, ``<recording>-001``, ...): the form for cameras that are one long
recording each. A last segment shorter than half the length is dropped. Frame names keep the
file's frame numbers, so mask names do not depend on segmentation. ``stride`` keeps every n-th
frame of a video file (masks of frames it skips are not used). Adjacent segments of one recording
look alike, so they are never divided between splits: ``splits.json`` lists a recording by its
name (all its segments) or its segments one by one, and the seeded split holds out whole
recordings.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError
from .index import LABELS, Video, VideoIndex, assign_splits, read_splits_file
from .io import ImageFiles, image_files, natural_key
from .video import VideoFile, is_video_file

__all__ = ["attach_masks", "check_unmatched", "find_masks", "read_video_folder", "recording_videos"]


def read_video_folder(root: str | Path, split_seed: int = 0, name: str = "video-folder",
                      segment_seconds: float | None = None, stride: int = 1) -> VideoIndex:
    """Index a video-folder data set.

    Args:
        root: the data set folder.
        split_seed: seed of the 80/20 split by video used when there is no ``splits.json``.
        name: data set name recorded in the index.
        segment_seconds: cut each video file into videos of this many seconds (``None``: one
            video per file). Folders of frames are not cut.
        stride: keep every ``stride``-th frame of each video file.

    Returns:
        The index with splits assigned.

    Raises:
        UserError: missing root, missing or empty ``before/``/``after/``, an unreadable video
            file, a bad option, a mask without frame, a mask folder without video.
    """
    root = Path(root).expanduser()
    try:
        seconds = None if segment_seconds is None else float(segment_seconds)
        step = int(stride)
    except (TypeError, ValueError):
        raise UserError(f"data set {name!r}: segment_seconds must be a number and stride an integer "
                        f"(got {segment_seconds!r}, {stride!r})") from None
    if seconds is not None and not seconds > 0:
        raise UserError(f"data set {name!r}: segment_seconds must be positive, not {seconds}")
    if step < 1:
        raise UserError(f"data set {name!r}: stride must be at least 1, not {step}")
    if not root.is_dir():
        raise UserError(f"{root}: data root not found (expected a folder with before/ and after/)")
    for label in LABELS:
        if not (root / label).is_dir():
            raise UserError(f"{root / label}: missing; a video-folder data set needs {root}/before/ and {root}/after/")
    videos: list[Video] = []
    any_files = False
    for label in LABELS:
        folder = root / label
        label_videos, owners = [], set()
        entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                         key=lambda p: natural_key(p.name))
        for entry in entries:
            if entry.is_dir():
                frames = image_files(entry)
                if frames:
                    video = Video(label=label, id=entry.name, frames=ImageFiles(frames))
                    masks = find_masks(root / "masks" / label / video.id)
                    check_unmatched(masks, attach_masks(video, masks), f"video {video.key}")
                    label_videos.append(video)
                    owners.add(entry.name)
            elif entry.is_file() and is_video_file(entry):
                any_files = True
                recording = recording_videos(entry, label, seconds, step)
                masks = find_masks(root / "masks" / label / entry.stem)
                for video in recording:
                    attach_masks(video, masks)
                if masks:  # masks of frames left out by stride or a dropped last segment are fine; others not
                    check_unmatched(masks, set(VideoFile(entry).names) & set(masks), f"recording {label}/{entry.name}")
                label_videos.extend(recording)
                owners.add(entry.stem)
        if not label_videos:
            if seconds is not None and any(e.is_file() and is_video_file(e) for e in entries):
                raise UserError(f"{folder}: every recording is shorter than half of segment_seconds={seconds}")
            raise UserError(f"{folder}: no videos (expected {folder}/<video_id>/<frame images>)")
        _check_mask_folders(root / "masks" / label, owners, folder)
        videos.extend(label_videos)
    splits_path = root / "splits.json"
    splits = read_splits_file(splits_path) if splits_path.exists() else None
    videos = assign_splits(videos, splits, seed=split_seed, source=str(splits_path))
    info: dict[str, object] = {
        "splits": "splits.json" if splits else f"seeded 80/20 by video (split_seed={split_seed})"}
    if any_files:  # only then, so the info of frame-folder data sets stays as it was
        info.update(segment_seconds=seconds, stride=step)
    return VideoIndex(name=name, root=root, videos=videos, info=info)


def recording_videos(path: Path, label: str, segment_seconds: float | None = None, stride: int = 1) -> list[Video]:
    """The videos of one video file: the whole file, or its consecutive segments.

    Args:
        path: the video file.
        label: ``"before"`` or ``"after"``.
        segment_seconds: segment length in seconds of the recording (``None``: the whole file).
        stride: keep every ``stride``-th frame.

    Returns:
        One :class:`~wsbench.data.Video` per file or segment, in temporal order (none when the
        file is shorter than half a segment).
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
        videos.append(Video(label=label, id=f"{path.stem}-{k:03d}", frames=frames, recording=path.stem))
    return videos


def find_masks(folder: Path) -> dict[str, Path]:
    """Mask files in ``folder`` by stem (empty if the folder does not exist)."""
    return {p.stem: p for p in image_files(folder)} if folder.is_dir() else {}


def attach_masks(video: Video, masks: dict[str, Path]) -> set[str]:
    """Pair each frame of ``video`` with the mask of the same stem, if any.

    Returns:
        The stems of the masks used, so callers can report masks that match no frame.
    """
    names = list(video.frames.names)
    used = set(names) & set(masks)
    if used:
        video.masks = [masks.get(n) for n in names]
    return used


def check_unmatched(masks: dict[str, Path], used: set[str], where: str) -> None:
    """Raise if a mask matched no frame: a naming mismatch would silently lose GT.

    Raises:
        UserError: naming the first unmatched mask file.
    """
    unknown = sorted(set(masks) - used, key=natural_key)
    if unknown:
        raise UserError(f"{masks[unknown[0]]}: mask has no matching frame in {where} "
                        f"({len(unknown)} such mask(s))")


def _check_mask_folders(masks_root: Path, ids: set[str], frames_root: Path) -> None:
    """Raise if a mask folder belongs to no video (folder or file): a renamed video would silently lose its GT."""
    if not masks_root.is_dir():
        return
    orphans = sorted((p.name for p in masks_root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name not in ids), key=natural_key)
    if orphans:
        raise UserError(f"{masks_root / orphans[0]}: masks of no video (there is no {frames_root / orphans[0]}/ "
                        f"with frames; {len(orphans)} such folder(s))")

