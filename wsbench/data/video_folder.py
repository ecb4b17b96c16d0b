"""The ``video-folder`` layout, which every other on-disk layout is brought to or read like::

    ROOT/
      before/<video_id>/<frame files>      temporal order = natural sort of the names
      after/<video_id>/<frame files>
      masks/before/<video_id>/<stem>.png   optional GT (object where a channel ≥ 128, or 0/1 labels), evaluation only
      splits.json                          optional {"train": [ids], "val": [...], "test": [...]}

Frames may be PNG or JPEG (any image format OpenCV reads), of any size, named with a number
anywhere in the name (gaps allowed). Files that are not images are skipped with a warning.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .index import LABELS, Video, VideoIndex, assign_splits, read_splits_file
from .io import ImageFiles, image_files, natural_key

__all__ = ["attach_masks", "check_unmatched", "find_masks", "read_video_folder"]


def read_video_folder(root: str | Path, split_seed: int = 0, name: str = "video-folder") -> VideoIndex:
    """Index a video-folder data set.

    Args:
        root: the data set folder.
        split_seed: seed of the 80/20 split by video used when there is no ``splits.json``.
        name: data set name recorded in the index.

    Returns:
        The index with splits assigned.

    Raises:
        UserError: missing root, missing or empty ``before/``/``after/``, a mask without frame,
            a mask folder without video.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data root not found (expected a folder with before/ and after/)")
    for label in LABELS:
        if not (root / label).is_dir():
            raise UserError(f"{root / label}: missing; a video-folder data set needs {root}/before/ and {root}/after/")
    videos: list[Video] = []
    for label in LABELS:
        folder = root / label
        label_videos = []
        for vdir in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                           key=lambda p: natural_key(p.name)):
            frames = image_files(vdir)
            if frames:
                label_videos.append(Video(label=label, id=vdir.name, frames=ImageFiles(frames)))
        if not label_videos:
            raise UserError(f"{folder}: no videos (expected {folder}/<video_id>/<frame images>)")
        for video in label_videos:
            masks = find_masks(root / "masks" / label / video.id)
            check_unmatched(masks, attach_masks(video, masks), f"video {video.key}")
        _check_mask_folders(root / "masks" / label, {v.id for v in label_videos}, folder)
        videos.extend(label_videos)
    splits_path = root / "splits.json"
    splits = read_splits_file(splits_path) if splits_path.exists() else None
    videos = assign_splits(videos, splits, seed=split_seed, source=str(splits_path))
    info = {"splits": "splits.json" if splits else f"seeded 80/20 by video (split_seed={split_seed})"}
    return VideoIndex(name=name, root=root, videos=videos, info=info)


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
    """Raise if a mask folder belongs to no video: a renamed video would silently lose its GT."""
    if not masks_root.is_dir():
        return
    orphans = sorted((p.name for p in masks_root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name not in ids), key=natural_key)
    if orphans:
        raise UserError(f"{masks_root / orphans[0]}: masks of no video (there is no {frames_root / orphans[0]}/ "
                        f"with frames; {len(orphans)} such folder(s))")

