"""The in-memory index of a video data set: videos, their label, split, frames and GT masks.

Every layout (video-folder, ZeroWaste-w, SERUSO, plugins) produces a :class:`VideoIndex`; the
caches, torch datasets and the evaluator only ever see this index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import UserError
from ..files import file_stat
from ..schema import ListOf, Record, Str, load_json
from .io import FrameSource

__all__ = ["LABELS", "SPLITS", "Video", "VideoIndex", "assign_splits", "read_splits_file"]

LABELS = ("before", "after")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Video:
    """One camera's video.

    Attributes:
        label: ``"before"`` or ``"after"`` (the only supervision).
        id: video id, unique within its label.
        frames: the frames in temporal order.
        masks: per frame, the GT mask file or ``None``; ``None`` for a video without GT.
            Only the evaluator opens these files.
        split: ``"train"``, ``"val"`` or ``"test"``.
        flow_files: per frame, where the layout keeps a precomputed ``.flo`` file with the flow to
            the next frame (read by the ``files`` flow estimator); ``None`` where it keeps none.
        recording: the recording this video is a segment of (``None``: the video is a recording
            of its own). Splits keep a recording's segments together.
    """

    label: str
    id: str
    frames: FrameSource
    masks: list[Path | None] | None = None
    split: str = "train"
    flow_files: list[Path] | None = None
    recording: str | None = None

    @property
    def key(self) -> str:
        """``"<label>/<id>"``, unique in the data set."""
        return f"{self.label}/{self.id}"

    @property
    def has_masks(self) -> bool:
        """Whether at least one frame has a GT mask."""
        return self.masks is not None and any(m is not None for m in self.masks)

    def __len__(self) -> int:
        return len(self.frames)


@dataclasses.dataclass
class VideoIndex:
    """A data set as a list of videos.

    Attributes:
        name: registry name of the data set.
        root: folder it was read from (``None`` for generated/in-memory sets).
        videos: all videos, each with its split assigned.
        static_after: the after class holds unrelated still images, not videos (ZeroWaste-w), so
            methods that need after videos must refuse the data set.
        info: free-form provenance recorded in run configs (generator config, split source).
    """

    name: str
    root: Path | None
    videos: list[Video]
    static_after: bool = False
    info: dict = dataclasses.field(default_factory=dict)

    def split(self, name: str, label: str | None = None) -> list[Video]:
        """Videos of split ``name`` (optionally of one label)."""
        return [v for v in self.videos if v.split == name and (label is None or v.label == label)]

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: {label: {"videos": n, "frames": n, "masked_frames": n}}}``."""
        out: dict = {}
        for v in self.videos:
            c = out.setdefault(v.split, {}).setdefault(v.label, {"videos": 0, "frames": 0, "masked_frames": 0})
            c["videos"] += 1
            c["frames"] += len(v)
            c["masked_frames"] += sum(m is not None for m in (v.masks or []))
        return out

    def fingerprint(self, masks: bool = False, splits: bool = True) -> str:
        """Content fingerprint: ids, splits and frame files (name, size, mtime), never pixel data.

        The root counts as its resolved absolute path, so ``./data`` and ``/abs/data`` are one
        data set, and a file changed in place (new size or mtime) changes the fingerprint.

        Args:
            masks: also the GT mask files (what a score depends on; the caches of frames and the
                classifiers do not read masks, so they are keyed without them).
            splits: also which split each video is in (``False``: the files alone, the data set's
                identity across split seeds).

        Returns:
            16 hex digits.
        """
        h = hashlib.sha256()
        h.update(json.dumps([self.name, str(Path(self.root).resolve()) if self.root else None]).encode())
        for v in self.videos:
            fp = v.frames.fingerprint() if hasattr(v.frames, "fingerprint") else list(v.frames.names)
            h.update(json.dumps([v.key, v.split if splits else None, fp]).encode())
            if masks:
                h.update(json.dumps([file_stat(m) if m is not None else None for m in v.masks or []]).encode())
        return h.hexdigest()[:16]


def read_splits_file(path: Path) -> dict[str, list[str]]:
    """Read ``splits.json``: ``{"train": [ids], "val": [...], "test": [...]}``.

    Raises:
        UserError: unreadable or invalid JSON (a key given twice, absurd nesting included) or a
            wrong structure, naming the file and the key.
    """
    ids = ListOf(Str())
    return load_json(path, Record({"train": ids, "val": ids, "test": ids}, required=("train",)), "splits")


def assign_splits(
    videos: Sequence[Video],
    splits: Mapping[str, Iterable[str]] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    source: str = "splits.json",
    proportions: tuple[float, float, float] | None = None,
) -> list[Video]:
    """Give every video a split, from an explicit mapping or by a seeded split by video.

    Args:
        videos: all videos (their ``split`` is overwritten).
        splits: ``{split: [ids]}``; an id is ``"label/id"`` or a bare id (matching that id in
            every label); the id of a recording cut into segments stands for all of its
            segments. Videos not listed are dropped with a warning.
        seed: seed of the split by video when ``splits`` is ``None``.
        val_fraction: share of each label's videos held out when ``splits`` is ``None`` (at least
            two once a label has four videos, one with two or three). Held-out videos are divided
            between val and test, masked ones first, so both get GT when at least two held-out
            videos have masks. The segments of one recording (``Video.recording``) move as one:
            recordings are held out until the share is reached (at least two when there are
            three), so near-duplicate frames of one recording never span two splits.
        source: name used in error messages for ``splits``.
        proportions: ``(train, val, test)`` weights of the seeded split instead of the
            ``val_fraction`` rule: each label's videos get ``round(n × val share)`` val and
            ``round(n × test share)`` test videos, the rest train. The ids of all labels are
            shuffled together, so videos with the same id in both labels (a synthetic belt's
            before/after pair, one stream seen by both cameras) land in the same split.

    Returns:
        The videos that have a split.

    Raises:
        UserError: an id in ``splits`` that matches no video, or a video in two splits.
    """
    if splits is not None:
        return _assign_listed(videos, splits, source)
    rng = random.Random(seed)
    if proportions is not None:
        return _assign_proportions(videos, rng, proportions)
    for label in LABELS:
        _hold_out(videos, label, rng, val_fraction)
    return list(videos)


def _assign_listed(videos: Sequence[Video], splits: Mapping[str, Iterable[str]], source: str) -> list[Video]:
    """The explicit split of :func:`assign_splits`: each listed id's videos get its split, the rest are dropped."""
    by_key: dict[str, list[Video]] = {}
    by_id: dict[str, list[Video]] = {}
    for v in videos:
        by_key.setdefault(v.key, []).append(v)
        by_id.setdefault(v.id, []).append(v)
    by_recording: dict[str, list[Video]] = {}  # a recording's id names all of its segments
    for v in videos:
        if v.recording is not None:
            for name in (f"{v.label}/{v.recording}", v.recording):
                by_recording.setdefault(name, []).append(v)
    seen: dict[str, str] = {}
    for split, ids in splits.items():
        for vid in ids:
            matched = by_key.get(vid) or by_id.get(vid) or by_recording.get(vid, [])
            if not matched:
                raise UserError(f"{source}: {split} lists video {vid!r}, which is not in the data set")
            for v in matched:
                if v.key in seen and seen[v.key] != split:
                    raise UserError(f"{source}: video {v.key!r} is in both {seen[v.key]} and {split}")
                seen[v.key] = split
                v.split = split
    unused = [v.key for v in videos if v.key not in seen]
    if unused:  # stacklevel 3: the warning names the caller of assign_splits
        warnings.warn(f"{source}: {len(unused)} video(s) in no split are not used: {', '.join(unused[:5])}"
                      + (" ..." if len(unused) > 5 else ""), stacklevel=3)
    return [v for v in videos if v.key in seen]


def _hold_out(videos: Sequence[Video], label: str, rng: random.Random, val_fraction: float) -> None:
    """The seeded split of :func:`assign_splits` for one label's videos: recordings held out for val and test."""
    units = _recordings(v for v in videos if v.label == label)
    rng.shuffle(units)
    n_videos = sum(len(u) for u in units)
    # at least one video each for val and test once there are four; one held out from two
    n_held = max(int(round(n_videos * val_fraction)), 2 if n_videos >= 4 else min(n_videos // 2, 1))
    held: list[list[Video]] = []
    for unit in units[:-1]:  # a recording stays in train
        if sum(len(u) for u in held) >= n_held and len(held) >= min(2, n_held):
            break
        held.append(unit)
    for unit in units[len(held):]:
        for v in unit:
            v.split = "train"
    held.sort(key=lambda u: not any(v.has_masks for v in u))  # masked first, so val and test both get GT
    for i, unit in enumerate(held):
        for v in unit:
            v.split = "val" if i % 2 == 0 else "test"
    if held and not any(v.has_masks for u in held for v in u if v.split == "test"):
        masked_val = [u for u in held if u[0].split == "val" and any(v.has_masks for v in u)]
        if masked_val:  # a single masked held-out recording goes to test, not val
            for v in masked_val[0]:
                v.split = "test"


def _recordings(videos: Iterable[Video]) -> list[list[Video]]:
    """Videos grouped by recording (a video without one is its own), ordered by their first key."""
    groups: dict[str, list[Video]] = {}
    for v in sorted(videos, key=lambda v: v.key):
        groups.setdefault(v.recording if v.recording is not None else f"\0{v.id}", []).append(v)
    return sorted(groups.values(), key=lambda u: u[0].key)


def _assign_proportions(videos: Sequence[Video], rng: random.Random,
                        proportions: tuple[float, float, float]) -> list[Video]:
    """The seeded split of :func:`assign_splits` with given (train, val, test) weights."""
    total = float(sum(proportions))
    if len(proportions) != 3 or min(proportions) < 0 or total <= 0:
        raise ValueError(f"proportions must be three non-negative weights, not {proportions!r}")
    order = sorted({v.id for v in videos})
    rng.shuffle(order)
    rank = {vid: i for i, vid in enumerate(order)}
    for label in LABELS:
        group = sorted((v for v in videos if v.label == label), key=lambda v: rank[v.id])
        n_val = int(round(len(group) * proportions[1] / total))
        n_test = min(int(round(len(group) * proportions[2] / total)), len(group) - n_val)
        for i, v in enumerate(group):
            v.split = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return list(videos)
