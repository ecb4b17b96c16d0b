"""Fidelity to the paper and the authors' code (issue 24): clip coverage, multi-scale combination,
the two IoU forms, paired intervals, the official ramp and the tuning sweep."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsbench.data.cache import VideoSlice
from wsbench.data.torch_data import ClipDataset, epoch_offset


def _fake_data(lengths: list[int], split: str = "train") -> SimpleNamespace:
    """Just what :class:`ClipDataset` reads to place clips: videos (all ``before``) and their slices."""
    videos, slices, start = [], [], 0
    for i, n in enumerate(lengths):
        videos.append(SimpleNamespace(split=split, label="before", key=f"before/v{i}"))
        slices.append(VideoSlice(start, n, (8, 8)))
        start += n
    return SimpleNamespace(index=SimpleNamespace(videos=videos, name="fake"), slices=slices)


def _centres_and_links(clips: ClipDataset) -> tuple[Counter, Counter]:
    """Temporal centres (frame → times) and linked neighbour pairs of the clips of one epoch,
    counted from the clips as the temporal loss uses them: positions 1..T-2 are centres, each
    linked to the frame before and after it."""
    centres: Counter = Counter()
    links: Counter = Counter()
    for t0, _, _ in clips.items:
        for c in range(t0 + 1, t0 + clips.clip_len - 1):
            centres[c] += 1
            links[(c - 1, c)] += 1
            links[(c, c + 1)] += 1
    return centres, links


def test_clip_epochs_make_every_frame_a_centre_hand_count():
    """One 12-frame video, clips of 4: two clips per epoch; over the 4 offsets frames 2..8 are
    centres twice each (hand count below). Fixed starts (0, 4, 8) made 0, 3, 4, 7, 8, 11 never centres."""
    clips = ClipDataset(_fake_data([12]), "train", np.zeros((12, 2, 2, 1, 1), np.float32), clip_len=4,
                        background_removal=False)
    per_offset = {}
    for offset in range(4):
        clips.set_offset(offset)
        per_offset[offset] = sorted(t0 for t0, _, _ in clips.items)
    assert per_offset == {0: [0, 4], 1: [1, 5], 2: [2, 6], 3: [3, 7]}
    total: Counter = Counter()
    for offset in range(4):
        clips.set_offset(offset)
        total += _centres_and_links(clips)[0]
    # centres per offset: 0 → 1,2,5,6; 1 → 2,3,6,7; 2 → 3,4,7,8; 3 → 4,5,8,9
    assert dict(total) == {1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2, 8: 2, 9: 1}
    with pytest.raises(ValueError, match="range\\(4\\)"):
        clips.set_offset(4)


def test_clip_cycle_counts_on_belt_sized_videos():
    """48 videos of 32 frames (the belt's train split), clips of 4 at the trainer's offsets: the same
    number of clips each epoch, and over 4 epochs every frame 2..28 of each video a centre exactly
    twice and every neighbour pair 1..28 linked (fixed starts: 768 of 1536 centres, 1152 of 1488 pairs)."""
    n, videos = 32, 48
    clips = ClipDataset(_fake_data([n] * videos), "train", np.zeros((n * videos, 2, 2, 1, 1), np.float32),
                        clip_len=4, background_removal=False)
    offsets = [epoch_offset(seed=5, epoch=e, period=clips.stride) for e in range(8)]
    assert sorted(offsets[:4]) == [0, 1, 2, 3] and sorted(offsets[4:]) == [0, 1, 2, 3]
    sizes, centres, links = set(), Counter(), Counter()
    for offset in offsets[:4]:
        clips.set_offset(offset)
        sizes.add(len(clips))
        c, li = _centres_and_links(clips)
        centres += c
        links += li
    assert sizes == {7 * videos}
    for v in range(videos):
        base = v * n
        assert all(centres[base + f] == 2 for f in range(2, 29))
        assert all(links[(base + f, base + f + 1)] > 0 for f in range(0, 29))
    assert len(centres) == videos * 29  # frames 1..29 of each video are centres at least once


def test_triplets_unchanged_by_offsets():
    clips = ClipDataset(_fake_data([6, 5]), "train", np.zeros((11, 2, 2, 1, 1), np.float32), clip_len=3,
                        stride=1, background_removal=False)
    assert sorted(t0 for t0, _, _ in clips.items) == [0, 1, 2, 3, 6, 7, 8]


def test_trainer_moves_clips_every_epoch_and_records_it(tiny_belt, tmp_path, monkeypatch):
    """The trainer sets each epoch's offset from (seed, epoch) and writes them to train.json."""
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.methods import create_method
    from wsbench.recipes import named_recipe
    from wsbench.train import train_classifier

    used = []
    original = ClipDataset.set_offset

    def spy(self, offset):
        used.append(offset)
        return original(self, offset)

    monkeypatch.setattr(ClipDataset, "set_offset", spy)
    recipe = named_recipe("smoke").recipe(epochs=3)
    data = prepare(create_dataset("video-folder", root=tiny_belt), recipe.image_size, cache_dir=tmp_path / "c")
    method = create_method("tccam", clip_len=3)
    train_classifier(method, recipe, data, seed=4, folder=tmp_path / "clf", device=torch.device("cpu"),
                     workers=0, progress=False)
    expected = [epoch_offset(4, e, 3) for e in range(3)]
    assert used[1:] == expected and sorted(expected) == [0, 1, 2]  # used[0]: the constructor's offset 0
    assert json.loads((tmp_path / "clf" / "train.json").read_text())["clip_offsets"] == expected
