"""Split seeds: re-splitting the synthetic belt, suites over split seeds, config hashes."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from wsbench.data import create_dataset
from wsbench.data.index import Video, assign_splits
from wsbench.errors import UserError
from wsbench.files import config_hash


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
    from wsbench.pipeline import RunSpec, resolve
    from wsbench.runs import recorded_split_seed

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
    ('split_seeds = []\n[[runs]]\nmethod = "cam"\n', "split_seeds: expected a non-empty list"),
    ('split_seeds = ["a"]\n[[runs]]\nmethod = "cam"\n', r"split_seeds\[0\]: expected an integer"),
    ('split_seeds = [1]\n[[runs]]\nmethod = "cam"\n[datasets_options."video-folder"]\nsplit_seed = 2\n',
     "sets split_seed and split_seeds is given"),
])
def test_bad_split_seeds_are_one_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        _spec(tmp_path, text)


# -- per-test-video counts ------------------------------------------------------------------------
def test_sweep_counts_at_a_threshold_by_hand():
    import numpy as np

    from wsbench.evaluate import IoUSweep

    gt = np.array([[1, 1, 0, 0]], bool)
    fg = np.array([[1, 1, 1, 0]], bool)
    a, b = IoUSweep(), IoUSweep()
    a.add(np.array([[0.9, 0.2, 0.7, 0.9]]), fg, gt)  # at 0.5: predicted {0, 2}; I = 1, U = |{0, 1, 2}| = 3
    b.add(np.array([[0.1, 0.1, 0.1, 0.1]]), fg, np.array([[0, 0, 0, 1]], bool))  # nothing predicted; GT outside fg
    assert a.at(50) == (1, 3) and b.at(50) == (0, 1) and a.at(0) == (2, 3)
    total = IoUSweep()
    total.merge(a)
    total.merge(b)
    assert total.at(50) == (1, 4) and total.frames == 2
    assert total.iou()[50] == pytest.approx(1 / 4)


@pytest.mark.slow
def test_resplit_run_records_its_split_and_per_video_counts(small_belt, tmp_path):
    import json

    from click.testing import CliRunner

    from wsbench.cli import cli

    runs = tmp_path / "runs"
    tiny = ["--recipe", "smoke", "--runs-dir", str(runs), "-q"]
    result = CliRunner().invoke(cli, ["run", "--method", "cam", "--split-seed", "2", *tiny])
    assert result.exit_code == 0, result.output
    (res,) = [json.loads(p.read_text()) for p in runs.glob("*/result.json")]
    config = res["config"]
    assert config["split_seed"] == 2 and config["resplit"] is True
    assert "split_seed=2" in config["dataset_info"]["splits"]
    expected = {v.key for v in create_dataset("synthetic-belt", split_seed=2).split("test", "before")}
    videos = res["counts"]["test_videos"]
    assert set(videos) == expected and sum(v["frames"] for v in videos.values()) == res["counts"]["test_frames"]
    iou = sum(v["intersection"] for v in videos.values()) / sum(v["union"] for v in videos.values())
    assert iou == pytest.approx(res["metrics"]["iou_illegal"], abs=1e-6)  # accumulated: Σ I / Σ U over videos
    again = CliRunner().invoke(cli, ["run", "--method", "cam", *tiny])  # no split seed: the fixed split
    assert again.exit_code == 0, again.output
    fixed = [json.loads(p.read_text()) for p in runs.glob("*/result.json") if json.loads(p.read_text()) != res]
    assert set(fixed[0]["counts"]["test_videos"]) == {f"before/v{i:03d}" for i in range(10, 16)}
    assert "resplit" not in fixed[0]["config"] and fixed[0]["config_hash"] != res["config_hash"]


# -- bootstrap over test videos -------------------------------------------------------------------
def _restated(groups, resamples=1000, seed=0, level=0.95):
    """The bootstrap, re-stated: per group one draw matrix, each run weighted by its videos' multiplicities."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values, n_runs = np.zeros(resamples), 0
    for runs in groups:  # each: list of (I, U) arrays over the same videos
        n = len(runs[0][0])
        draw = rng.integers(0, n, size=(resamples, n))
        for inter, union in runs:
            for b in range(resamples):
                m = np.bincount(draw[b], minlength=n)
                values[b] += (m @ inter) / (m @ union)
            n_runs += 1
    return tuple(np.percentile(values / n_runs, [100 * (1 - level) / 2, 100 * (1 + level) / 2]))


def _as_counts(keys, inter, union):
    return {k: {"intersection": int(i), "union": int(u)} for k, i, u in zip(keys, inter, union, strict=True)}


def test_bootstrap_matches_an_independent_restatement():
    import numpy as np

    from wsbench.bootstrap import iou_interval

    rng = np.random.default_rng(42)
    split_a = [f"before/a{i:02d}" for i in range(9)]
    split_b = [f"before/b{i:02d}" for i in range(5)]
    groups = []
    for keys, runs in ((split_a, 3), (split_b, 2)):
        group = []
        for _ in range(runs):
            union = rng.integers(50, 500, len(keys))
            group.append((rng.integers(0, union + 1), union))
        groups.append(group)
    runs = [_as_counts(keys, i, u) for keys, group in zip((split_a, split_b), groups, strict=True) for i, u in group]
    # the same runs in another order and with their videos listed in another order: the same interval
    shuffled = [dict(reversed(list(r.items()))) for r in reversed(runs)]
    low, high = iou_interval(runs)
    assert (low, high) == pytest.approx(_restated(groups), abs=1e-12)
    assert iou_interval(shuffled) == pytest.approx((low, high), abs=1e-12)
    point = np.mean([i.sum() / u.sum() for g in groups for i, u in g])
    assert low < point < high and high - low < 0.2
    assert iou_interval(runs, seed=1) != (low, high) and iou_interval(runs, level=0.5)[0] > low


def test_bootstrap_by_hand():
    from wsbench.bootstrap import iou_interval

    one = {"before/v0": {"intersection": 3, "union": 4}}
    assert iou_interval([one]) == (0.75, 0.75)  # one video: every resample is that video
    assert iou_interval([one, {"before/v0": {"intersection": 1, "union": 4}}]) == (0.5, 0.5)  # mean of two runs
    # two videos, 1/2 and 3/4: a resample is {1,1} → 2/4, {1,2} → 4/6 or {2,2} → 6/8, the outer two a
    # quarter of the time each, so the 2.5 % and 97.5 % percentiles are exactly 0.5 and 0.75
    two = {"before/v0": {"intersection": 1, "union": 2}, "before/v1": {"intersection": 3, "union": 4}}
    assert iou_interval([two]) == (0.5, 0.75)
    assert iou_interval([{"before/v0": {"intersection": 0, "union": 0}}]) is None  # no union: no IoU
    assert iou_interval([]) is None and iou_interval([{}]) is None


# -- tables over seeds × split seeds, with intervals -------------------------------------------------
def _fake(runs_dir, method, seed, split_seed, videos, resplit=True, counts=True, **options):
    """A finished run as execute() records it, its IoU made from per-video counts."""
    import dataclasses

    from wsbench.methods import create_method, method_info
    from wsbench.runs import create_run, finish_run

    m = create_method(method, **options)
    fusion = m.fusion()
    semantic = {"method": method, "method_options": dataclasses.asdict(m.options), "dataset": "synthetic-belt",
                "data_root": None, "split_seed": split_seed, "seed": seed, "recipe": {"epochs": 8},
                "fusion": dataclasses.asdict(fusion) if fusion else None}
    if resplit:
        semantic["resplit"] = True
    config = dict(semantic, config_hash=config_hash(semantic), label=None, dataset_info={"static_after": False},
                  classifier={"method": m.classifier()[0], "options": m.classifier()[1]})
    config["method_info"] = method_info(m)
    record = create_run(runs_dir, config)
    iou = sum(v["intersection"] for v in videos.values()) / sum(v["union"] for v in videos.values())
    result = {"run_id": record.run_id, "method": method, "dataset": "synthetic-belt", "seed": seed,
              "config_hash": config["config_hash"], "metrics": {"iou_illegal": iou, "miou": iou, "threshold": 0.5},
              "baselines": {"all_foreground": {"iou_illegal": 0.2}},
              "counts": {"test_videos": videos} if counts else {}, "config": config}
    return finish_run(record, result)


def _videos(rng, keys):
    union = rng.integers(100, 400, len(keys))
    return _as_counts(keys, rng.integers(0, union + 1), union)


@pytest.fixture
def split_runs(tmp_path):
    """cam and tccam, 2 seeds × 2 split seeds (re-split), plus puzzlecam on the fixed split without counts."""
    import numpy as np

    rng = np.random.default_rng(0)
    runs_dir = tmp_path / "runs"
    tests = {3: [f"before/v{i:03d}" for i in range(0, 6)], 4: [f"before/v{i:03d}" for i in range(3, 9)]}
    made = {}
    for method in ("cam", "tccam"):
        for split_seed, keys in tests.items():
            for seed in (0, 1):
                made[method, seed, split_seed] = _fake(runs_dir, method, seed, split_seed, _videos(rng, keys))
    _fake(runs_dir, "puzzlecam", 0, 0, _videos(rng, tests[3]), resplit=False, counts=False)
    _fake(runs_dir, "puzzlecam", 1, 0, _videos(rng, tests[3]), resplit=False, counts=False)
    return runs_dir, made


def test_cells_pool_seeds_and_split_seeds_with_intervals(split_runs):
    import re

    import numpy as np

    from wsbench.bootstrap import iou_interval
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    runs_dir, made = split_runs
    table = comparison(iter_runs(runs_dir), ci=True)
    cells = dict(zip(table.columns, table.rows[0][1], strict=True))
    cam = cells["CAM"]
    mine = [r for (method, _, _), r in made.items() if method == "cam"]
    ious = [r.result["metrics"]["iou_illegal"] for r in mine]
    assert (cam.n, cam.seeds, cam.split_seeds) == (4, 2, 2)
    assert cam.mean == pytest.approx(100 * np.mean(ious)) and cam.std == pytest.approx(100 * np.std(ious, ddof=1))
    low, high = iou_interval([r.result["counts"]["test_videos"] for r in mine])
    assert (cam.ci_low, cam.ci_high) == pytest.approx((100 * low, 100 * high))
    assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d \[\d+\.\d, \d+\.\d\]§?", cam.text)  # §: below the row's best
    puzzle = cells["PuzzleCAM [split=default]"]  # the fixed split is another variant; no counts, no interval
    assert puzzle.n == 2 and puzzle.ci_low is None and "[" not in puzzle.text
    # the reference pools every run of the row: 2 seeds × split seeds 0 (fixed), 3 and 4
    assert "mean ± std over 2–6 runs (2 seeds × 1–3 split seeds; differs per cell)" in table.caption
    assert "1000 resamples" in table.caption
    assert table.footnotes == ["No interval for PuzzleCAM [split=default]: a result.json without per-test-video counts "
                               "(counts.test_videos, written since split seeds exist)."]
    plain = comparison(iter_runs(runs_dir))
    assert "[" not in dict(zip(plain.columns, plain.rows[0][1], strict=True))["CAM"].text
    assert "resamples" not in plain.caption


def test_leaderboard_ci_in_every_format(split_runs):
    import csv
    import io
    import json

    from click.testing import CliRunner

    from wsbench.cli import cli

    runs_dir, _ = split_runs

    def board(*args):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs_dir), "--ci", *args])
        assert result.exit_code == 0, result.output
        return result.output

    interval = r"\d+\.\d\d ± \d+\.\d\d \[\d+\.\d, \d+\.\d\]"
    import re

    md = board("--table", "comparison")
    assert re.search(rf"\| \*\*{interval}\*\*", md) and "No interval for PuzzleCAM" in md
    assert re.search(interval.replace("±", r"\$\\pm\$"), board("--table", "ablation", "--format", "latex"))
    rows = list(csv.DictReader(io.StringIO(board("--format", "csv"))))
    tc = next(r for r in rows if r["table"] == "comparison" and r["column"] == "TC-CAM")
    assert float(tc["ci_low"]) < float(tc["mean"]) < float(tc["ci_high"]) and tc["split_seeds"] == "2"
    assert tc["runs"] == "4" and tc["seeds"] == "2"
    payload = json.loads(board("--format", "json"))
    cell = payload[0]["rows"][0]["cells"][payload[0]["columns"].index("TC-CAM")]
    assert cell["ci_low"] < cell["mean"] < cell["ci_high"] and cell["split_seeds"] == 2
    miou = board("--metric", "miou", "--table", "comparison")
    assert not re.search(r"\d\]", miou) and "for the illegal IoU and PxAP only" in miou
    long = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs_dir), "--ci", "--table", "long"])
    assert long.exit_code == 1 and "--ci" in long.output


def test_paper_spec_runs_the_fixed_split_and_its_commented_example_loads(tmp_path):
    from pathlib import Path

    from wsbench.suite import load_spec

    paper = Path(__file__).parent.parent / "benchmarks" / "paper.toml"
    assert load_spec(paper).split_seeds is None  # by default the fixed split, as before
    text = paper.read_text()
    assert "\n# split_seeds = [0, 1, 2]" in text
    example = tmp_path / "paper.toml"
    example.write_text(text.replace("\n# split_seeds = [0, 1, 2]", "\nsplit_seeds = [0, 1, 2]"))
    assert load_spec(example).split_seeds == [0, 1, 2]
