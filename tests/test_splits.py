"""Split seeds: re-splitting the synthetic belt, suites over split seeds, config hashes."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from wsbench.data import create_dataset
from wsbench.data.index import Video, assign_splits
from wsbench.errors import UserError
from wsbench.runs import config_hash


def _pairs(n: int) -> list[Video]:
    return [Video(label=label, id=f"v{i:03d}", frames=[]) for label in ("before", "after") for i in range(n)]


def test_proportions_split_is_seeded_stratified_and_keeps_pairs():
    a = assign_splits(_pairs(64), seed=5, proportions=(24, 16, 24))
    b = assign_splits(_pairs(64), seed=5, proportions=(24, 16, 24))
    c = assign_splits(_pairs(64), seed=6, proportions=(24, 16, 24))
    assert [v.split for v in a] == [v.split for v in b] != [v.split for v in c]
    for label in ("before", "after"):
        assert Counter(v.split for v in a if v.label == label) == {"train": 24, "val": 16, "test": 24}
    by_key = {v.key: v.split for v in a}
    assert all(by_key[f"before/{v.id}"] == by_key[f"after/{v.id}"] for v in a)  # one stream, one split
    fixed = {f"v{i:03d}": "train" if i < 24 else "val" if i < 40 else "test" for i in range(64)}
    assert any(by_key[f"before/{vid}"] != split for vid, split in fixed.items())
    with pytest.raises(ValueError, match="three non-negative"):
        assign_splits(_pairs(4), proportions=(1, -1, 1))


def test_proportions_round_per_label():
    videos = [Video(label="before", id=f"b{i}", frames=[]) for i in range(7)] + \
             [Video(label="after", id=f"a{i}", frames=[]) for i in range(3)]
    counts = Counter((v.label, v.split) for v in assign_splits(videos, seed=0, proportions=(3, 2, 2)))
    assert counts == {("before", "train"): 3, ("before", "val"): 2, ("before", "test"): 2,
                      ("after", "train"): 1, ("after", "val"): 1, ("after", "test"): 1}


@pytest.fixture
def small_belt(monkeypatch):
    """``synthetic-belt`` with a tiny generator config (6/4/6 pairs of 2 frames), so tests stay fast."""
    from wsbench.data import synthetic

    config = synthetic.BeltConfig(train_videos=6, val_videos=4, test_videos=6, frames=2, size=(32, 32))
    monkeypatch.setattr(synthetic, "BeltConfig", lambda: config)
    return config


def test_belt_keeps_its_fixed_split_without_a_split_seed(small_belt):
    index = create_dataset("synthetic-belt")
    assert {v.key: v.split for v in index.videos if v.label == "before"} == \
        {f"before/v{i:03d}": "train" if i < 6 else "val" if i < 10 else "test" for i in range(16)}
    assert index.info["splits"] == "splits.json" and "resplit" not in index.info


def test_belt_is_resplit_with_a_split_seed(small_belt):
    index = create_dataset("synthetic-belt", split_seed=0)
    for label in ("before", "after"):
        assert Counter(v.split for v in index.videos if v.label == label) == {"train": 6, "val": 4, "test": 6}
    splits = {v.key: v.split for v in index.videos}
    assert all(splits[f"before/{v.id}"] == splits[f"after/{v.id}"] for v in index.videos)
    assert splits != {v.key: v.split for v in create_dataset("synthetic-belt").videos}
    assert index.info["resplit"] is True and "split_seed=0" in index.info["splits"]
    assert splits == {v.key: v.split for v in create_dataset("synthetic-belt", split_seed=0).videos}
    assert splits != {v.key: v.split for v in create_dataset("synthetic-belt", split_seed=1).videos}


def test_config_hash_of_a_run_without_split_seed_is_unchanged(small_belt, video_folder):
    from wsbench.pipeline import RunSpec, recorded_split_seed, resolve

    # the configuration every run had before split seeds existed: these keys, split_seed 0
    legacy_keys = ("method", "method_options", "dataset", "data_root", "split_seed", "seed", "recipe", "fusion")
    for spec in (RunSpec(method="tccam", dataset="synthetic-belt"),
                 RunSpec(method="cam", dataset="video-folder", data_root=str(video_folder))):
        config = resolve(spec).config
        legacy = {k: config[k] for k in legacy_keys}
        assert legacy["split_seed"] == 0 and "resplit" not in config
        assert config["config_hash"] == config_hash(legacy)
        assert recorded_split_seed(config) is None
    # a seeded layout: seed 0 is its default split, so an explicit 0 is the same run
    explicit = resolve(RunSpec(method="cam", dataset="video-folder", data_root=str(video_folder), split_seed=0))
    assert explicit.config["config_hash"] == config["config_hash"]
    # the belt re-split, even with seed 0, is another configuration, and reproducible from its record
    fixed = resolve(RunSpec(method="tccam", dataset="synthetic-belt")).config
    hashes = {fixed["config_hash"]}
    for seed in (0, 1):
        resplit = resolve(RunSpec(method="tccam", dataset="synthetic-belt", split_seed=seed)).config
        assert resplit["split_seed"] == seed and resplit["resplit"] is True
        assert recorded_split_seed(resplit) == seed
        hashes.add(resplit["config_hash"])
    assert len(hashes) == 3


def _spec(tmp_path, text: str):
    from wsbench.suite import load_spec

    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    return load_spec(path)


def test_suite_repeats_every_run_per_split_seed(tmp_path):
    from wsbench.suite import _specs

    spec = _spec(tmp_path, """
        datasets = ["synthetic-belt"]
        seeds = [0, 1]
        split_seeds = [3, 4, 5]
        [[runs]]
        method = "cam"
        [[runs]]
        method = "tccam"
    """)
    specs = [s for _, s in _specs(spec, spec.seeds, {})]
    assert len(specs) == 12
    assert Counter((s.method, s.split_seed) for s in specs) == {(m, k): 2 for m in ("cam", "tccam") for k in (3, 4, 5)}
    plain = _spec(tmp_path, 'datasets = ["synthetic-belt"]\n[[runs]]\nmethod = "cam"\n')
    assert [s.split_seed for _, s in _specs(plain, [0], {})] == [None]  # the data set's own split


@pytest.mark.parametrize("text, message", [
    ('split_seeds = []\n[[runs]]\nmethod = "cam"\n', "split_seeds must be a non-empty list of integers"),
    ('split_seeds = ["a"]\n[[runs]]\nmethod = "cam"\n', "split_seeds must be a non-empty list of integers"),
    ('split_seeds = [1]\n[[runs]]\nmethod = "cam"\n[datasets_options."video-folder"]\nsplit_seed = 2\n',
     "sets split_seed and split_seeds is given"),
])
def test_bad_split_seeds_are_one_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        _spec(tmp_path, text)
