"""Torch datasets over a :class:`~wsbench.data.cache.PreparedData`: single images and clips.

With background removal (the paper's default) one cached frame yields two training images:
the objects on black, labelled with the video's class (before/after), and the belt with the
objects blacked out, labelled ``background``. Without it, the original frame with its video's
label (two classes). Neither dataset has any access to GT masks.

Items are uint8 tensors; normalisation and augmentation happen on the batch, on the device.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .cache import PreparedData

__all__ = ["ClipDataset", "FrameDataset", "classes_for", "collate", "epoch_offset"]

ORIGINAL, FOREGROUND, BACKGROUND = 0, 1, 2


def classes_for(background_removal: bool) -> tuple[str, ...]:
    """Class names of the classifier: three with background removal, two without."""
    return ("before", "after", "background") if background_removal else ("before", "after")


def _streams(data: PreparedData, split: str, background_removal: bool) -> list[tuple[int, int, int]]:
    """(video position, input variant, label index) for every image stream of ``split``."""
    classes = classes_for(background_removal)
    out = []
    for pos, video in enumerate(data.index.videos):
        if video.split != split:
            continue
        if background_removal:
            out.append((pos, FOREGROUND, classes.index(video.label)))
            out.append((pos, BACKGROUND, classes.index("background")))
        else:
            out.append((pos, ORIGINAL, classes.index(video.label)))
    return out


def make_input(frames: np.ndarray, fg: np.ndarray, variant: int) -> np.ndarray:
    """The network input of ``variant`` from original frames (..., h, w, 3) and masks (..., h, w)."""
    if variant == ORIGINAL:
        return np.asarray(frames)
    keep = fg if variant == FOREGROUND else 1 - fg
    return np.asarray(frames) * np.asarray(keep)[..., None]


class FrameDataset(Dataset):
    """Every frame of a split as one image per input variant.

    Args:
        data: the prepared data set.
        split: ``"train"``, ``"val"`` or ``"test"``.
        background_removal: three-class inputs (objects / background) or original frames.

    Items: ``{"image": uint8 (3, h, w), "label": int, "frame": int}``.
    """

    def __init__(self, data: PreparedData, split: str, background_removal: bool = True) -> None:
        self.data = data
        self.classes = classes_for(background_removal)
        self.items: list[tuple[int, int, int]] = []
        for pos, variant, label in _streams(data, split, background_removal):
            s = data.slices[pos]
            self.items.extend((n, variant, label) for n in range(s.start, s.stop))
        if not self.items:
            raise UserError(f"data set {data.index.name!r} has no {split} frames")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        n, variant, label = self.items[i]
        image = make_input(self.data.frames[n], self.data.fg[n], variant)
        return {"image": torch.from_numpy(np.array(image)).permute(2, 0, 1),
                "label": label, "frame": n}


class ClipDataset(Dataset):
    """Clips of ``clip_len`` consecutive frames of one stream, with their cached flows.

    Clips never cross two videos. Each video holds the same number of clips in every epoch, at
    starts ``offset + k·stride``; the trainer moves the offset through a seeded permutation of
    ``range(stride)`` every ``stride`` epochs (:func:`epoch_offset`). With ``stride = clip_len``
    and K clips per video (see :meth:`set_offset`), over such a cycle every frame f of a video
    with ``clip_len − 2 ≤ f ≤ K·clip_len`` is a temporal centre exactly ``clip_len − 2`` times and
    every pair of neighbouring frames is linked by the temporal loss; with fixed starts the first
    and last frame of every clip would never be centres. ``stride=1`` with
    ``clip_len=3`` gives the paper's triplets, one per central frame, in every epoch.

    Args:
        data: the prepared data set.
        split: which split.
        flows: the cached flow array of ``data.flows(...)``.
        clip_len: frames per clip (≥ 3).
        stride: distance between clip starts (default ``clip_len``).
        background_removal: as in :class:`FrameDataset`.

    Items: ``{"images": uint8 (T, 3, h, w), "flows": float32 (T, 2, 2, hf, wf), "label": int,
    "frame": int}`` where ``flows[t, 0]`` goes from frame t to t+1 and ``flows[t, 1]`` to t-1.
    """

    def __init__(self, data: PreparedData, split: str, flows: np.ndarray, clip_len: int = 4,
                 stride: int | None = None, background_removal: bool = True) -> None:
        if clip_len < 3:
            raise UserError(f"clip length must be at least 3 (got {clip_len})")
        self.data, self.flows, self.clip_len = data, flows, clip_len
        self.classes = classes_for(background_removal)
        self.stride = stride or clip_len
        self.streams: list[tuple[int, int, int, int]] = []  # (first frame, frames, variant, label)
        short: list[str] = []
        for pos, variant, label in _streams(data, split, background_removal):
            s = data.slices[pos]
            if s.length < clip_len:
                if variant != BACKGROUND:
                    short.append(data.index.videos[pos].key)
                continue
            self.streams.append((s.start, s.length, variant, label))
        if not self.streams:
            raise UserError(f"data set {data.index.name!r}: no {split} video has the {clip_len} consecutive "
                            "frames temporal training needs")
        if short:  # skipped with a warning only while other videos are usable
            warnings.warn(f"{len(short)} video(s) shorter than {clip_len} frames skipped for temporal training "
                          f"(e.g. {short[0]})", stacklevel=2)
        self.offset = 0
        self.items: list[tuple[int, int, int]] = []
        self.set_offset(0)

    def set_offset(self, offset: int) -> None:
        """Move the clip starts of every video to ``offset + k·stride`` (``offset`` in ``range(stride)``).

        A video of n frames holds ``K = (n − clip_len − stride + 1) // stride + 1`` clips (at least
        one), the most that fit at every offset, so the number of clips, and of steps, is the same
        in every epoch. Its frames beyond ``offset + (K − 1)·stride + clip_len`` are left out of
        that epoch; a video too short for every offset takes ``offset`` modulo the offsets it has.

        Raises:
            ValueError: ``offset`` is not in ``range(stride)``.
        """
        if not 0 <= offset < self.stride:
            raise ValueError(f"clip offset must be in range({self.stride}), got {offset}")
        self.offset, self.items = offset, []
        for start, n, variant, label in self.streams:
            count = max(1, (n - self.clip_len - self.stride + 1) // self.stride + 1)
            room = min(self.stride, n - self.clip_len - (count - 1) * self.stride + 1)
            first = start + offset % room
            self.items.extend((first + k * self.stride, variant, label) for k in range(count))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        t0, variant, label = self.items[i]
        t1 = t0 + self.clip_len
        images = make_input(self.data.frames[t0:t1], self.data.fg[t0:t1], variant)
        return {"images": torch.from_numpy(np.array(images)).permute(0, 3, 1, 2),
                "flows": torch.from_numpy(np.asarray(self.flows[t0:t1], dtype=np.float32)),
                "label": label, "frame": t0}


def epoch_offset(seed: int, epoch: int, period: int) -> int:
    """The clip offset of ``epoch``: a seeded permutation of ``range(period)`` per ``period`` epochs.

    A pure function of (seed, epoch), like the trainer's shuffling, so a resumed run uses the
    offsets an uninterrupted one would; every offset is used once in each cycle of ``period`` epochs.

    Args:
        seed: the run's seed.
        epoch: the epoch (0-based).
        period: the number of offsets (the clip stride).

    Returns:
        The offset in ``range(period)``.
    """
    cycle, position = divmod(epoch, period)
    gen = torch.Generator().manual_seed((seed * 100_003 + 50_021 * (cycle + 1)) % 2**64)
    return int(torch.randperm(period, generator=gen)[position])


def collate(items: Sequence[dict]) -> dict:
    """Stack a list of items into a batch (labels as a long tensor)."""
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
    return out
