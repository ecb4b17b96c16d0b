"""SERUSO and WS² in the layout of the authors' benchmark code (andreamarelli99/WS-WS-Dataset)::

    train_val_dataset/
      training/{before,after[,bg]}/<video>/<prefix>_<NNNN>.jpg
      validation/{before,after[,bg]}/<video>/<prefix>_<NNNN>.jpg
    test_set/
      images/{before,after}/<video>/<prefix>_<NNNN>.jpg
      masks/{before,after}/<video>/<prefix>_<NNNN>.jpg     JPEG GT: grey ≥ 128 (half range) = illegal
      optical_flows/{before,after}/<video>/<prefix>_<NNNN>.flo
    optical_flows/{training,validation}/{before,after}/<video>/<prefix>_<NNNN>.flo   (beside train_val_dataset)

The two folders are looked for anywhere under the given root (an extracted archive may add a top
folder). The given splits are used as they are: ``training`` → train, ``validation`` → val,
``test_set`` → test (its *after* videos too; only *before* frames are scored). ``bg/`` folders hold
the optional third class of the authors' code, which their configuration does not train on;
wsbench makes its background class by background removal instead, so ``bg/`` is not read.

A frame's ``.flo`` file holds the flow from frame n to frame n+1 (the authors' convention); the
``files`` flow estimator (:mod:`wsbench.flow`) reads them. A video whose frame numbers have a gap
is split into runs of consecutive numbers (``<video>#2``, ...), since a flow never spans a gap.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError
from .index import LABELS, Video, VideoIndex
from .io import ImageFiles, is_image_file, natural_key
from .video_folder import attach_masks, check_unmatched, find_masks

__all__ = ["EXPECTED", "find_layout", "read_seruso"]

EXPECTED = ("train_val_dataset/{training,validation}/{before,after}/<video>/<name>_<NNNN>.jpg and "
            "test_set/{images,masks}/{before,after}/<video>/<name>_<NNNN>.jpg")
_NAME = re.compile(r"^(?P<prefix>.+)_(?P<number>\d+)$")
_SEARCH_DEPTH = 4
_SUBSETS = (("training", "train"), ("validation", "val"))


def find_layout(root: Path) -> tuple[Path, Path]:
    """Find ``train_val_dataset/`` and ``test_set/`` under ``root`` (the shallowest of each).

    Returns:
        ``(train_val_dataset, test_set)`` folders.

    Raises:
        UserError: either is missing within a few levels below ``root``; the message says what was expected.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data root not found (expected a folder holding {EXPECTED})")
    found: dict[str, Path] = {}
    base_depth = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in ("train_val_dataset", "test_set"):
            if name in dirnames and name not in found:
                found[name] = here / name
        dirnames[:] = [d for d in dirnames if d not in ("train_val_dataset", "test_set")]
        if len(here.parts) - base_depth >= _SEARCH_DEPTH - 1:
            dirnames[:] = []
    missing = [n for n in ("train_val_dataset", "test_set") if n not in found]
    if missing:
        raise UserError(f"{root}: no {' or '.join(m + '/' for m in missing)} found in it or {_SEARCH_DEPTH - 1} "
                        f"levels below; the SERUSO/WS² layout is {EXPECTED}")
    return found["train_val_dataset"], found["test_set"]


def read_seruso(root: str | Path, name: str = "seruso") -> VideoIndex:
    """Index SERUSO or WS² in the authors' layout.

    Args:
        root: a folder that contains (possibly a few levels down) ``train_val_dataset/`` and
            ``test_set/``.
        name: data set name recorded in the index.

    Returns:
        The index with the given splits; every video has ``flow_files`` at the authors' default
        locations (the files need not exist unless the ``files`` flow estimator is used).

    Raises:
        UserError: the layout is not found, a split or class folder is missing or empty, a frame
            name is not ``<name>_<number>``, or a mask matches no frame.
    """
    train_val, test = find_layout(Path(root))
    videos: list[Video] = []
    for subset, split in _SUBSETS:
        videos += _read_subset(train_val / subset, split, subset, flow_root=train_val.parent / "optical_flows" / subset)
    videos += _read_subset(test / "images", "test", "test", flow_root=test / "optical_flows", masks_root=test / "masks")
    if not any(v.has_masks for v in videos if v.label == "before"):
        raise UserError(f"{test / 'masks' / 'before'}: no GT mask matches a test frame (expected "
                        f"test_set/masks/before/<video>/<same name>.jpg)")
    info = {"splits": "given (training / validation / test_set)", "layout": str(train_val.parent),
            "test_set": str(test)}
    return VideoIndex(name=name, root=train_val.parent, videos=videos, info=info)


def _read_subset(folder: Path, split: str, subset: str, flow_root: Path, masks_root: Path | None = None) -> list[Video]:
    videos: list[Video] = []
    for label in LABELS:
        class_dir = folder / label
        if not class_dir.is_dir():
            raise UserError(f"{class_dir}: missing; the SERUSO/WS² layout is {EXPECTED}")
        label_videos = []
        for vdir in sorted((p for p in class_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                           key=lambda p: natural_key(p.name)):
            masks = find_masks(masks_root / label / vdir.name) if masks_root is not None else {}
            used: set[str] = set()
            for k, run in enumerate(_consecutive_runs(vdir)):
                vid = f"{subset}/{vdir.name}" + (f"#{k + 1}" if k else "")
                video = Video(label=label, id=vid, frames=ImageFiles(run), split=split,
                              flow_files=[flow_root / label / vdir.name / f"{p.stem}.flo" for p in run])
                used |= attach_masks(video, masks)
                label_videos.append(video)
            check_unmatched(masks, used, f"{vdir}")
        if not label_videos:
            raise UserError(f"{class_dir}: no videos (expected {class_dir}/<video>/<name>_<NNNN>.jpg)")
        videos += label_videos
    return videos


def _consecutive_runs(vdir: Path) -> list[list[Path]]:
    """The frames of one video folder, ordered by number and cut where a number is skipped."""
    numbered = []
    for p in vdir.iterdir():
        if not (p.is_file() and is_image_file(p)):
            continue
        match = _NAME.match(p.stem)
        if match is None:
            raise UserError(f"{p}: frame name is not <name>_<number> as in the SERUSO/WS² layout")
        numbered.append((int(match["number"]), p))
    numbered.sort(key=lambda item: (item[0], item[1].name))
    runs: list[list[Path]] = []
    previous = None
    for number, path in numbered:
        if number == previous:
            raise UserError(f"{path}: a second frame numbered {number} in {vdir}")
        if previous is None or number != previous + 1:
            runs.append([])
        runs[-1].append(path)
        previous = number
    return runs
