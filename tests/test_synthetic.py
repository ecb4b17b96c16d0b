"""Tests of the synthetic conveyor-belt data set generator (wsbench.data.synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsbench.data import synthetic
from wsbench.data.synthetic import BeltConfig, generate_belt, render_pair
from wsbench.errors import UserError

TINY = BeltConfig(train_videos=2, val_videos=1, test_videos=1, frames=6, size=(64, 64))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_belt(tmp_path_factory.mktemp("belt") / "root", TINY)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _foreground(frames: np.ndarray) -> np.ndarray:
    """Median background removal as the data pipeline does it: |gray - median| > 22, open, close."""
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.int16)
    fg = (np.abs(gray - np.median(gray, axis=0)) > 22).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    return np.stack([cv2.morphologyEx(cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel),
                                      cv2.MORPH_CLOSE, kernel) for m in fg]).astype(bool)


def test_layout_and_splits(tiny_root: Path) -> None:
    assert sorted(p.name for p in tiny_root.iterdir()) == [
        "after", "before", "belt.json", "masks", "splits.json"]
    assert not list(tiny_root.parent.glob("root.tmp-*"))
    splits = json.loads((tiny_root / "splits.json").read_text())
    assert splits == {
        "train": ["before/v000", "after/v000", "before/v001", "after/v001"],
        "val": ["before/v002", "after/v002"],
        "test": ["before/v003", "after/v003"],
    }
    assert sorted(p.name for p in (tiny_root / "masks").iterdir()) == ["before"]
    names = [f"frame_{t:04d}.png" for t in range(TINY.frames)]
    for vid in ("v000", "v001", "v002", "v003"):
        for folder in ("before", "after", "masks/before"):
            assert sorted(p.name for p in (tiny_root / folder / vid).iterdir()) == names
        for name in names:
            frame = cv2.imread(str(tiny_root / "before" / vid / name), cv2.IMREAD_UNCHANGED)
            after = cv2.imread(str(tiny_root / "after" / vid / name), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(tiny_root / "masks/before" / vid / name), cv2.IMREAD_UNCHANGED)
            assert frame.shape == after.shape == (64, 64, 3) and frame.dtype == np.uint8
            assert mask.shape == (64, 64) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}
    belt = json.loads((tiny_root / "belt.json").read_text())
    assert belt["version"] == synthetic.GENERATOR_VERSION
    assert BeltConfig.from_dict(belt["config"]) == TINY
    assert sorted(belt["videos"]) == ["v000", "v001", "v002", "v003"]


def test_masks_match_rendering(tiny_root: Path) -> None:
    before, _ = render_pair(TINY, 1)
    for t in range(TINY.frames):
        frame = cv2.imread(str(tiny_root / f"before/v001/frame_{t:04d}.png"))
        mask = cv2.imread(str(tiny_root / f"masks/before/v001/frame_{t:04d}.png"), 0)
        assert np.array_equal(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), before.frames[t])
        assert np.array_equal(mask > 0, before.illegal[t])


def test_deterministic(tiny_root: Path, tmp_path: Path) -> None:
    again = generate_belt(tmp_path / "again", TINY, workers=2)  # parallel must not matter
    assert _files(again) == _files(tiny_root)
    other = generate_belt(tmp_path / "other", BeltConfig(**{**TINY.to_dict(), "seed": 1}))
    assert _files(other)["before/v000/frame_0000.png"] != _files(tiny_root)[
        "before/v000/frame_0000.png"]


def test_reuse_and_conflict(tiny_root: Path, tmp_path: Path) -> None:
    stamp = (tiny_root / "belt.json").stat().st_mtime_ns
    assert generate_belt(tiny_root, TINY) == tiny_root
    assert (tiny_root / "belt.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="root"):
        generate_belt(tiny_root, BeltConfig(**{**TINY.to_dict(), "frames": 5}))
    (tmp_path / "junk").mkdir()
    with pytest.raises(UserError, match="junk"):
        generate_belt(tmp_path / "junk", TINY)


def test_interrupted_generation_leaves_no_root(tmp_path: Path, monkeypatch) -> None:
    def boom(config: BeltConfig, index: int):
        if index == 1:
            raise RuntimeError("interrupted")
        return real(config, index)

    real = synthetic.render_pair
    monkeypatch.setattr(synthetic, "render_pair", boom)
    with pytest.raises(RuntimeError):
        generate_belt(tmp_path / "root", TINY, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_after_twin_has_only_leftovers(tiny_root: Path) -> None:
    belt = json.loads((tiny_root / "belt.json").read_text())
    for stats in belt["videos"].values():
        assert stats["before"]["illegal_objects"] > 0
        assert stats["before"]["illegal_pixel_fraction"] > 0
        if stats["after"]["illegal_objects"] == 0:
            assert stats["after"]["illegal_pixel_fraction"] == 0
    base = dict(TINY.to_dict(), illegal_fraction=(0.3, 0.3))
    for index in range(3):
        before, after = render_pair(BeltConfig(**{**base, "leftover_prob": 0.0}), index)
        assert before.illegal.any() and not after.illegal.any()
        assert after.stats["illegal_objects"] == 0
        assert after.stats["objects"] == before.stats["objects"] - before.stats["illegal_objects"]
        # The operator misses everything: the after twin shows the same illegal objects
        # (up to the cameras' sub-pixel jitter).
        before, after = render_pair(BeltConfig(**{**base, "leftover_prob": 1.0}), index)
        inter = (before.illegal & after.illegal).sum()
        assert inter / (before.illegal | after.illegal).sum() > 0.7


def test_leftovers_are_rare() -> None:
    config = BeltConfig(frames=2, size=(64, 64), illegal_fraction=(0.3, 0.3))
    counts = np.array([[s.stats["illegal_objects"] for s in render_pair(config, i)]
                       for i in range(30)])
    assert 0 < counts[:, 1].sum() < 0.15 * counts[:, 0].sum()


def test_belt_moves_by_a_translation() -> None:
    config = BeltConfig(frames=8)
    for index in range(3):
        for video in render_pair(config, index):
            gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in video.frames]
            shifts = np.array([cv2.phaseCorrelate(a, b)[0] for a, b in zip(gray, gray[1:], strict=False)])
            dx, dy = np.median(shifts, axis=0)
            assert abs(dx - video.stats["speed"]) < 1.0 and abs(dy) < 1.0
            assert 3.0 <= video.stats["speed"] <= 5.0


def test_fair_foreground_baseline() -> None:
    """Legal objects are foreground too, so all-foreground is a weak, not a trivial, baseline."""
    config = BeltConfig(frames=24)
    inter = fg_total = legal = legal_fg = 0
    for index in range(8):
        before, _ = render_pair(config, index)
        assert 9 <= before.stats["objects_in_view"] <= 17
        fg = _foreground(before.frames)
        inter += (fg & before.illegal).sum()
        fg_total += fg.sum()
        legal += before.legal.sum()
        legal_fg += (fg & before.legal).sum()
    assert 0.12 <= inter / fg_total <= 0.40
    assert legal_fg / legal >= 0.6


def test_config_validation() -> None:
    assert BeltConfig.from_dict(BeltConfig().to_dict()) == BeltConfig()
    assert BeltConfig(size=[64, 48]).size == (64, 48)
    with pytest.raises(UserError):
        BeltConfig(size=(8, 8))
    with pytest.raises(UserError):
        BeltConfig(leftover_prob=1.5)
    with pytest.raises(UserError, match="colour"):
        BeltConfig.from_dict({"colour": 1})


def test_more_test_videos_leave_the_train_and_val_videos_unchanged(tmp_path: Path, tiny_root: Path) -> None:
    """A grown test split (``wsbench data synth --test-videos``) keeps every train and val file byte for byte,
    so classifiers trained on the smaller belt are the ones the grown one trains (what
    benchmarks/test_split_size.py relies on)."""
    from click.testing import CliRunner

    from wsbench.cli import cli

    result = CliRunner().invoke(cli, ["data", "synth", "--out", str(tmp_path / "grown"), "--videos", "2",
                                      "--test-videos", "3", "--frames", "6", "--size", "64x64"])
    assert result.exit_code == 0, result.output
    grown = tmp_path / "grown"
    splits = json.loads((grown / "splits.json").read_text())
    small = json.loads((tiny_root / "splits.json").read_text())
    assert splits["train"] == small["train"] and splits["val"] == small["val"]
    assert len(splits["test"]) == 2 * 3 and set(small["test"]) < set(splits["test"])
    old, new = _files(tiny_root), _files(grown)
    kept = [name for name in old if any(f"/{v.split('/')[1]}" in name for v in small["train"] + small["val"])]
    assert kept and all(new[name] == old[name] for name in kept)
