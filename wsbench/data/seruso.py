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
folder). The given splits: ``training`` → train, ``validation`` → val, ``test_set`` → test (its
*after* videos too; only *before* frames are scored). The validation videos have no GT masks, so
nothing could choose the threshold on them: by default (``val_from_test=0.25``) a seeded quarter
of ``test_set``'s videos of each class, whole video folders, moves to val (:func:`carve_val_from_test`);
their masks are used only to choose the threshold, and the rest of ``test_set`` is the test
split. ``val_from_test=0`` keeps ``test_set`` whole, and the evaluator then uses a fixed threshold
of 0.5 and says so. ``bg/`` folders hold
the optional third class of the authors' code, which their configuration does not train on;
wsbench makes its background class by background removal instead, so ``bg/`` is not read.

A frame's ``.flo`` file holds the flow from frame n to frame n+1 (the authors' convention); the
``files`` flow estimator (:mod:`wsbench.flow`) reads them. A video whose frame numbers have a gap
is split into runs of consecutive numbers (``<video>#2``, ...), since a flow never spans a gap.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path

from ..errors import UserError
from .index import LABELS, Video, VideoIndex
from .io import ImageFiles, named_images, natural_key
from .video_folder import attach_masks, check_unmatched, find_masks

__all__ = ["EXPECTED", "VAL_FROM_TEST", "carve_val_from_test", "find_layout", "read_seruso"]

EXPECTED = ("train_val_dataset/{training,validation}/{before,after}/<video>/<name>_<NNNN>.jpg and "
            "test_set/{images,masks}/{before,after}/<video>/<name>_<NNNN>.jpg")
_NAME = re.compile(r"^(?P<prefix>.+)_(?P<number>\d+)$")
_SEARCH_DEPTH = 4
_SUBSETS = (("training", "train"), ("validation", "val"))
#: default share of test_set's videos (per class, by video folder) that becomes the masked val split
VAL_FROM_TEST = 0.25


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


def read_seruso(root: str | Path, name: str = "seruso", val_from_test: float = VAL_FROM_TEST,
                split_seed: int = 0) -> VideoIndex:
    """Index SERUSO or WS² in the authors' layout.

    Args:
        root: a folder that contains (possibly a few levels down) ``train_val_dataset/`` and
            ``test_set/``.
        name: data set name recorded in the index.
        val_from_test: share of ``test_set``'s videos of each class moved to the val split, so that
            the threshold is chosen on masked frames (:func:`carve_val_from_test`); ``0``: the given
            splits only, and a fixed threshold.
        split_seed: seed of which test videos move.

    Returns:
        The index; every video has ``flow_files`` at the authors' default locations (the files
        need not exist unless the ``files`` flow estimator is used). ``info`` records the splits
        and, under ``val_from_test``, the share, the seed and the videos moved.

    Raises:
        UserError: the layout is not found, a split or class folder is missing or empty, a frame
            name is not ``<name>_<number>``, a mask matches no frame, or ``val_from_test`` is not
            in [0, 1).
    """
    try:
        fraction = float(val_from_test)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0 <= fraction < 1:
        raise UserError(f"data set {name!r}: val_from_test must be a number in [0, 1), not {val_from_test!r}")
    train_val, test = find_layout(Path(root))
    videos: list[Video] = []
    for subset, split in _SUBSETS:
        videos += _read_subset(train_val / subset, split, subset, flow_root=train_val.parent / "optical_flows" / subset)
    videos += _read_subset(test / "images", "test", "test", flow_root=test / "optical_flows", masks_root=test / "masks")
    if not any(v.has_masks for v in videos if v.label == "before"):
        raise UserError(f"{test / 'masks' / 'before'}: no GT mask matches a test frame (expected "
                        f"test_set/masks/before/<video>/<same name>.jpg)")
    moved = carve_val_from_test(videos, fraction, split_seed)
    if moved:
        splits = (f"training → train; validation + {fraction:g} of test_set's videos per class (seed {split_seed}, "
                  f"by video; their masks only choose the threshold) → val; the rest of test_set → test")
    else:
        splits = "given (training / validation / test_set); val has no masks, so the threshold is fixed"
    info = {"splits": splits, "layout": str(train_val.parent), "test_set": str(test),
            "val_from_test": {"fraction": fraction, "seed": split_seed, "videos": moved}}
    return VideoIndex(name=name, root=train_val.parent, videos=videos, info=info)


def carve_val_from_test(videos: list[Video], fraction: float, seed: int) -> list[str]:
    """Move a seeded share of the test videos of each class to the val split, whole video folders.

    The runs of one folder (``<video>``, ``<video>#2``, … after a gap in the frame numbers) move
    together, so no video is in both splits. Per class, ``round(n × fraction)`` of its ``n`` test
    folders move, at least one and never all of them (nothing moves when ``fraction`` is 0 or the
    class has a single test folder; without a masked before video in val a warning says the
    threshold will be fixed).

    Args:
        videos: all videos; the ``split`` of the moved ones is set to ``"val"``.
        fraction: share in [0, 1).
        seed: seed of the choice (the same seed and data give the same split).

    Returns:
        Keys (``label/id``) of the moved videos, in order.
    """
    moved: list[str] = []
    if fraction <= 0:
        return moved
    rng = random.Random(seed)
    for label in LABELS:
        folders: dict[str, list[Video]] = {}
        for v in videos:
            if v.split == "test" and v.label == label:
                folders.setdefault(re.sub(r"#\d+$", "", v.id), []).append(v)
        names = sorted(folders, key=natural_key)
        rng.shuffle(names)
        count = min(len(names) - 1, max(1, round(len(names) * fraction)))
        for folder in sorted(names[:count], key=natural_key):
            for v in folders[folder]:
                v.split = "val"
                moved.append(v.key)
    if not any(v.has_masks for v in videos if v.split == "val" and v.label == "before"):
        warnings.warn("test_set has too few masked before videos to hold one out for val: the threshold will be "
                      "fixed at 0.5 (see metrics.threshold_source)", stacklevel=3)
    return moved


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
    expected = "frame name is not <name>_<number> as in the SERUSO/WS² layout"
    numbered = [(int(match["number"]), p) for match, p in named_images(vdir, _NAME, expected)]
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
