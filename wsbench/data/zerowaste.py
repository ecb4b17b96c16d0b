"""The public ZeroWaste-w layout (Bashkirova et al., CVPR 2022)::

    ROOT/before/01_frame_004640.PNG ...     frames of before videos, <video>_frame_<number>
    ROOT/after/03_frame_000120.PNG ...      after images: unsynchronised stills, not videos
    ROOT/segmentation_gt/before/<same name> optional GT masks

Frames are grouped into videos by the prefix before ``_frame_`` and ordered by the number.
Because the after class is made of stills, methods that need after *videos* refuse this data set.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from .index import LABELS, Video, VideoIndex, assign_splits
from .io import ImageFiles, named_images, natural_key
from .video_folder import attach_masks, check_unmatched, find_masks

__all__ = ["read_zerowaste"]

_NAME = re.compile(r"^(?P<video>.+?)_frame_(?P<number>\d+)$")


def read_zerowaste(root: str | Path, split_seed: int = 0, name: str = "zerowaste-w") -> VideoIndex:
    """Index a ZeroWaste-w folder.

    Args:
        root: folder holding ``before/`` and ``after/`` (and optionally ``segmentation_gt/``).
        split_seed: seed of the 80/20 split by video.
        name: data set name recorded in the index.

    Returns:
        The index, with ``static_after=True``.

    Raises:
        UserError: missing folders, no images, or a file name without ``_frame_<number>``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data root not found (expected ZeroWaste-w's before/ and after/)")
    videos: list[Video] = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            raise UserError(f"{folder}: missing; ZeroWaste-w needs {root}/before/ and {root}/after/")
        groups: dict[str, list[Path]] = {}
        for match, path in named_images(folder, _NAME, "name is not <video>_frame_<number> as in ZeroWaste-w"):
            groups.setdefault(match["video"], []).append(path)
        if not groups:
            raise UserError(f"{folder}: no images")
        masks, used = find_masks(root / "segmentation_gt" / label), set()
        for vid in sorted(groups, key=natural_key):
            paths = sorted(groups[vid], key=lambda p: int(_NAME.match(p.stem)["number"]))  # type: ignore[index]
            video = Video(label=label, id=vid, frames=ImageFiles(paths))
            used |= attach_masks(video, masks)
            videos.append(video)
        check_unmatched(masks, used, f"{folder}")
    videos = assign_splits(videos, None, seed=split_seed)
    return VideoIndex(name=name, root=root, videos=videos, static_after=True,
                      info={"splits": f"seeded 80/20 by video (split_seed={split_seed})"})
