"""``frames-csv``: every frame of every video in one flat folder, with a CSV of video labels.

The layout many labelling tools and frame dumps produce::

    ROOT/
      frames/<video>_frame_<n>.png     all frames of all videos (PNG or JPEG); n orders a video's frames
      labels.csv                       one row per video: video,label[,split]
      masks/<video>_frame_<n>.png      optional GT of a before frame (object where a channel ≥ 128)

``labels.csv`` has a header; ``label`` is ``before`` or ``after``; the optional ``split`` column
(``train``, ``val``, ``test``) fixes the splits, otherwise videos are split 80/20 by video with
``--split-seed``. A frame whose video is not in ``labels.csv`` is an error (a typo would silently
drop a video), and so is a video without frames.

This file is the whole plugin: one function registered with ``register_dataset`` that returns a
:class:`~wsbench.data.VideoIndex`, built from wsbench's own pieces (``ImageFiles``, ``Video``,
``assign_splits``). Caching, background removal and flow happen downstream.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from wsbench.data import LABELS, SPLITS, Video, VideoIndex, register_dataset
from wsbench.data.index import assign_splits
from wsbench.data.io import ImageFiles, image_files, natural_key
from wsbench.errors import UserError

__all__ = ["frames_csv", "read_labels"]

FRAME_NAME = re.compile(r"^(?P<video>.+)_frame_(?P<n>\d+)$")


@register_dataset("frames-csv", description="frames/<video>_frame_<n>.png in one folder + labels.csv (plugin)")
def frames_csv(root: Path, split_seed: int = 0, frame_pattern: str = FRAME_NAME.pattern) -> VideoIndex:
    """Index a flat folder of frames whose videos are labelled in ``labels.csv``.

    Args:
        root: the data set folder (see the module docstring for its layout).
        split_seed: seed of the 80/20 split by video when ``labels.csv`` has no ``split`` column.
        frame_pattern: regular expression a frame's file stem must match, with the groups
            ``video`` and ``n`` (``--dataset-option frame_pattern=...`` for other names).

    Returns:
        The index with splits assigned.

    Raises:
        UserError: a missing folder or file, a bad ``labels.csv`` row, a frame name that does not
            match the pattern, a frame of an unlabelled video, a labelled video without frames,
            a mask without frame.
    """
    root = Path(root)
    try:
        pattern = re.compile(frame_pattern)
    except re.error as err:
        raise UserError(f"data set 'frames-csv': frame_pattern is not a regular expression ({err})") from None
    if not {"video", "n"} <= set(pattern.groupindex):
        raise UserError("data set 'frames-csv': frame_pattern needs the groups (?P<video>...) and (?P<n>\\d+)")
    if not (root / "frames").is_dir():
        raise UserError(f"{root / 'frames'}: missing (expected all frames in {root}/frames/)")
    labels, splits = read_labels(root / "labels.csv")

    by_video: dict[str, list[Path]] = {}
    for path in image_files(root / "frames"):
        match = pattern.fullmatch(path.stem)
        if not match:
            raise UserError(f"{path}: frame name does not match {pattern.pattern!r}")
        if match["video"] not in labels:
            raise UserError(f"{path}: video {match['video']!r} is not in {root / 'labels.csv'}")
        by_video.setdefault(match["video"], []).append(path)
    masks = {p.stem: p for p in image_files(root / "masks")} if (root / "masks").is_dir() else {}
    unused = sorted(set(masks) - {p.stem for paths in by_video.values() for p in paths}, key=natural_key)
    if unused:
        raise UserError(f"{masks[unused[0]]}: mask has no matching frame in {root / 'frames'}")

    videos = []
    for vid, label in labels.items():
        if vid not in by_video:
            raise UserError(f"{root / 'labels.csv'}: video {vid!r} has no frames in {root / 'frames'}")
        frames = sorted(by_video[vid], key=lambda p: int(pattern.fullmatch(p.stem)["n"]))
        video = Video(label=label, id=vid, frames=ImageFiles(frames))
        if any(p.stem in masks for p in frames):
            video.masks = [masks.get(p.stem) for p in frames]
        videos.append(video)
    videos = assign_splits(videos, splits, seed=split_seed, source=str(root / "labels.csv"))
    info = {"splits": "labels.csv" if splits else f"seeded 80/20 by video (split_seed={split_seed})"}
    return VideoIndex(name="frames-csv", root=root, videos=videos, info=info)


def read_labels(path: Path) -> tuple[dict[str, str], dict[str, list[str]] | None]:
    """Read ``labels.csv``.

    Returns:
        ``({video: label}, {split: [videos]} or None when there is no split column)``.

    Raises:
        UserError: a missing file or column, an unknown label or split, a video listed twice.
    """
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            columns = set(rows[0]) if rows else set()
    except FileNotFoundError:
        raise UserError(f"{path}: missing (expected a CSV with the columns video,label[,split])") from None
    if not {"video", "label"} <= columns:
        raise UserError(f"{path}: needs the columns video and label (and optionally split), has {sorted(columns)}")
    labels: dict[str, str] = {}
    splits: dict[str, list[str]] | None = {} if "split" in columns else None
    for line, row in enumerate(rows, 2):
        vid, label = (row["video"] or "").strip(), (row["label"] or "").strip()
        if label not in LABELS:
            raise UserError(f"{path}:{line}: label must be before or after, not {label!r}")
        if not vid or vid in labels:
            raise UserError(f"{path}:{line}: video id {vid!r} is empty or listed twice")
        labels[vid] = label
        if splits is not None:
            split = (row["split"] or "").strip()
            if split not in SPLITS:
                raise UserError(f"{path}:{line}: split must be one of {', '.join(SPLITS)}, not {split!r}")
            splits.setdefault(split, []).append(f"{label}/{vid}")
    if splits is not None and "train" not in splits:
        raise UserError(f"{path}: no video has split train")
    return labels, splits
