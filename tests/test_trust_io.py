"""Trustworthy inputs and outputs: recordings, label images, flow and weights files, leaks, half-written outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsbench.data import create_dataset
from wsbench.errors import UserError

from .conftest import write_mp4_folder


# -- segmented recordings: one recording, one split -----------------------------------------------
def _recording_splits(index) -> dict[str, set[str]]:
    """``{label/recording: {splits of its segments}}``."""
    out: dict[str, set[str]] = {}
    for v in index.videos:
        out.setdefault(f"{v.label}/{v.id.rsplit('-', 1)[0]}", set()).add(v.split)
    return out


def test_segments_of_one_recording_never_span_two_splits(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=40)  # 3 recordings a camera, 4 one-second segments each
    for seed in range(8):
        index = create_dataset("video-folder", root=root, segment_seconds=1.0, split_seed=seed)
        assert len(index.videos) == 24
        spans = _recording_splits(index)
        assert all(len(s) == 1 for s in spans.values()), (seed, spans)
        for label in ("before", "after"):  # three recordings: one each for train, val and test
            assert sorted(next(iter(s)) for k, s in spans.items() if k.startswith(label)) == ["test", "train", "val"]
    # a splits.json listing recordings by name (bare or by camera) covers all of their segments
    (root / "splits.json").write_text(json.dumps({"train": ["vid0", "before/vid1"], "val": ["after/vid1"],
                                                  "test": ["vid2"]}))
    index = create_dataset("video-folder", root=root, segment_seconds=1.0)
    assert {k: s.pop() for k, s in _recording_splits(index).items()} == {
        "before/vid0": "train", "after/vid0": "train", "before/vid1": "train", "after/vid1": "val",
        "before/vid2": "test", "after/vid2": "test"}
    # segments listed one by one still work, and so do whole files without segment_seconds
    (root / "splits.json").write_text(json.dumps({"train": ["vid0-000", "vid0-001"], "test": ["vid2-003"]}))
    with pytest.warns(UserWarning, match="in no split are not used"):
        index = create_dataset("video-folder", root=root, segment_seconds=1.0)
    assert sorted(v.key for v in index.videos) == ["after/vid0-000", "after/vid0-001", "after/vid2-003",
                                                   "before/vid0-000", "before/vid0-001", "before/vid2-003"]
    (root / "splits.json").write_text(json.dumps({"train": ["vid0"], "val": ["vid1"], "test": ["vid2"]}))
    assert len(create_dataset("video-folder", root=root).videos) == 6
    (root / "splits.json").write_text(json.dumps({"train": ["vid0", "vid7"]}))
    with pytest.raises(UserError, match="'vid7', which is not in the data set"):
        create_dataset("video-folder", root=root, segment_seconds=1.0)
