"""Fidelity to the paper and the authors' code (issue 24): clip coverage, multi-scale combination,
the two IoU forms, paired intervals, the official ramp and the tuning sweep."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
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
    from wsbench.train import Hardware, train_classifier

    used = []
    original = ClipDataset.set_offset

    def spy(self, offset):
        used.append(offset)
        return original(self, offset)

    monkeypatch.setattr(ClipDataset, "set_offset", spy)
    recipe = named_recipe("smoke").recipe(epochs=3)
    data = prepare(create_dataset("video-folder", root=tiny_belt), recipe.image_size, cache_dir=tmp_path / "c")
    method = create_method("tccam", clip_len=3)
    train_classifier(method, recipe, data, seed=4, folder=tmp_path / "clf",
                     hardware=Hardware(torch.device("cpu"), workers=0))
    expected = [epoch_offset(4, e, 3) for e in range(3)]
    assert used[1:] == expected and sorted(expected) == [0, 1, 2]  # used[0]: the constructor's offset 0
    assert json.loads((tmp_path / "clf" / "train.json").read_text())["clip_offsets"] == expected


# -- item 2: multi-scale combination ----------------------------------------------------------------
class _ScaledRandomCam:
    """A stand-in CAM method: raw maps random ≥ 0 at 1/8 of the input, their magnitude growing with
    the input size (so normalising each scale first weighs the scales differently from the raw sum)."""

    target = "before"

    def raw_maps(self, model, images):
        b, _, h, w = images.shape
        gen = torch.Generator().manual_seed(h * 1000 + w)
        return torch.rand(b, max(1, h // 8), max(1, w // 8), generator=gen) * (h / 16) ** 2

    def maps(self, model, images):
        raw = self.raw_maps(model, images)
        return raw / (raw.flatten(1).amax(1).view(-1, 1, 1) + 1e-5)


def authors_sum(maps_of, images, scales, flip):
    """The authors' multi-scale sum restated: ``maps_of`` (images -> (N, h, w) maps) of every scale (and mirror,
    flipped back) enlarged to the input size and summed."""
    h, w = images.shape[-2:]
    total = torch.zeros(images.shape[0], h, w)
    for s in scales:
        size = (max(8, round(h * s)), max(8, round(w * s)))
        x = torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=s < 1)
        for mirrored in ([False, True] if flip else [False]):
            maps = maps_of(x.flip(-1) if mirrored else x)
            maps = maps.flip(-1) if mirrored else maps
            total += torch.nn.functional.interpolate(maps[:, None], size=(h, w), mode="bilinear",
                                                     antialias=maps.shape[-1] > w)[:, 0]
    return total


def _authors_raw_combination(method, images, scales, flip):
    """The authors' code restated: the raw maps of every scale (and mirror) enlarged to the input and
    summed, then ReLU and one division by the maximum + 1e-5."""
    total = authors_sum(lambda x: method.raw_maps(None, x), images, scales, flip).relu()
    return total / (total.flatten(1).amax(1).view(-1, 1, 1) + 1e-5)


def test_raw_combination_restates_the_authors_code():
    from wsbench.maps import multiscale_maps

    x = torch.rand(2, 3, 48, 64)
    scales = (0.2, 0.5, 1.0, 2.0, 4.0, 6.0)
    method = _ScaledRandomCam()
    raw = multiscale_maps(method, None, x, scales, True, combine="raw")
    expected = _authors_raw_combination(method, x, scales, True)
    assert torch.allclose(raw, expected, atol=1e-5)
    normalised = multiscale_maps(method, None, x, scales, True)  # the default: normalised, then summed
    assert (normalised - expected).abs().max() > 0.05  # the two combinations differ on these maps
    with pytest.raises(ValueError, match="--cam-combine must be one of normalised, raw"):
        multiscale_maps(method, None, x, scales, True, combine="mean")


def test_raw_combination_hand_case():
    """Two scales with 1x2 maps, raw [1, 0] and [3, 3]: raw sum [4, 3] / (4 + 1e-5) ≈ [1, 0.75] at the
    left and right edge; normalised [1, 0] + [1, 1] = [2, 1] / 2 = [1, 0.5]."""
    from wsbench.maps import multiscale_maps

    class Two:
        target = "before"

        def raw_maps(self, model, images):
            return torch.tensor([[[1.0, 0.0]]]) if images.shape[-1] == 16 else torch.tensor([[[3.0, 3.0]]])

        def maps(self, model, images):
            raw = self.raw_maps(model, images)
            return raw / raw.amax()

    x = torch.zeros(1, 3, 8, 16)
    # scale 1 → 8x16 input (map [1, 0]); scale 2 → 16x32 input (map [3, 3]); maps resized to 8x16
    raw = multiscale_maps(Two(), None, x, (1.0, 2.0), combine="raw")
    normalised = multiscale_maps(Two(), None, x, (1.0, 2.0))
    assert raw.shape == (1, 8, 16)
    assert raw[0, 0, 0].item() == pytest.approx(4 / (4 + 1e-5))
    assert raw[0, 0, -1].item() == pytest.approx(0.75, abs=1e-5)
    assert normalised[0, 0, 0].item() == pytest.approx(1.0) and normalised[0, 0, -1].item() == pytest.approx(0.5)


def test_cam_combine_is_recorded_and_checked(tiny_belt):
    from wsbench.errors import UserError
    from wsbench.pipeline import RunSpec, resolve
    from wsbench.runs import cam_inference

    base = dict(dataset="video-folder", data_root=str(tiny_belt), recipe_name="smoke", cam_scales="0.5,1")
    raw = resolve(RunSpec(method="cam", cam_combine="raw", **base)).config
    normalised = resolve(RunSpec(method="cam", **base)).config
    assert raw["cam_inference"] == {"scales": [0.5, 1.0], "flip": False, "combine": "raw"}
    assert "combine" not in normalised["cam_inference"] and raw["config_hash"] != normalised["config_hash"]
    assert cam_inference(raw)["cam_combine"] == "raw" and cam_inference(normalised)["cam_combine"] == "normalised"
    with pytest.raises(UserError, match="--cam-combine raw: method 'gradcam' has its own maps"):
        resolve(RunSpec(method="gradcam", cam_combine="raw", **base))


def test_authors_preset_combines_raw_maps():
    import tomllib

    spec = tomllib.loads((Path(__file__).parent.parent / "benchmarks" / "seruso-wsws.toml").read_text())
    assert spec["evaluation"]["cam_combine"] == "raw"


# -- item 3: the two illegal-class IoU forms ----------------------------------------------------------
def test_per_frame_and_pooled_iou_hand_count():
    """Three 2x2 frames, all foreground, threshold 0.5: A predicts (0,0), (0,1) with GT (0,0), (1,0) → 1/3;
    B predicts nothing and has no GT → empty union → 1 (the authors' rule); C is exact → 1.
    Per-frame mean (1/3 + 1 + 1) / 3 = 7/9; pooled Σ I / Σ U = (1 + 0 + 1) / (3 + 0 + 1) = 1/2."""
    from wsbench.evaluate import IoUSweep

    fg = np.ones((2, 2), bool)
    sweep = IoUSweep()
    sweep.add(np.array([[0.9, 0.9], [0.1, 0.1]]), fg, np.array([[1, 0], [1, 0]], bool))
    sweep.add(np.full((2, 2), 0.2), fg, np.zeros((2, 2), bool))
    sweep.add(np.array([[0.8, 0.0], [0.0, 0.0]]), fg, np.array([[1, 0], [0, 0]], bool))
    assert sweep.per_frame_iou()[50] == pytest.approx(7 / 9)
    assert sweep.iou()[50] == pytest.approx(1 / 2)
    # threshold 0 predicts every foreground pixel: 2/4, 0/4 (B's union is its 4 pixels), 1/4
    assert sweep.per_frame_iou()[0] == pytest.approx((0.5 + 0 + 0.25) / 3)


def _restated_frame_iou(scores, fg, gt, k):
    pred = (np.clip((scores * 100).astype(int), 0, 99) >= k) & fg
    union = (pred | gt).sum()
    return 1.0 if union == 0 else (pred & gt).sum() / union


def test_per_frame_iou_matches_a_restatement_on_random_frames():
    from wsbench.evaluate import IoUSweep

    rng = np.random.default_rng(3)
    frames = []
    for i in range(7):
        scores = rng.random((9, 11)) ** (i + 1)  # some frames predict little
        fg = rng.random((9, 11)) < 0.8
        gt = (rng.random((9, 11)) < 0.3) if i % 3 else np.zeros((9, 11), bool)  # and some have no GT
        frames.append((scores, fg, gt))
    whole, parts = IoUSweep(), [IoUSweep(), IoUSweep()]
    for i, frame in enumerate(frames):
        whole.add(*frame)
        parts[i % 2].add(*frame)
    parts[0].merge(parts[1])
    for k in (0, 10, 37, 50, 90, 99):
        expected = np.mean([_restated_frame_iou(*frame, k) for frame in frames])
        assert whole.per_frame_iou()[k] == pytest.approx(expected, abs=1e-12)
        assert parts[0].per_frame_iou()[k] == pytest.approx(expected, abs=1e-12)
    assert not np.allclose(whole.per_frame_iou(), whole.iou(), equal_nan=True)


# -- item 4: paired intervals ------------------------------------------------------------------------
def _counts(keys, inter, union, frame_sum=None):
    return {k: {"intersection": int(i), "union": int(u), "frames": 2,
                "iou_frame_sum": float(2 * i / u if frame_sum is None else frame_sum[j])}
            for j, (k, i, u) in enumerate(zip(keys, inter, union, strict=True))}


def _restated_difference(runs_a, runs_b, ratio=("intersection", "union"), resamples=1000, seed=0, level=0.95):
    """The paired bootstrap restated for runs that all share one split: one draw matrix, both cells on it."""
    keys = sorted(runs_a[0])
    draw = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))

    def cell(runs):
        values = []
        for run in runs:
            num = np.array([run[k][ratio[0]] for k in keys], float)[draw].sum(1)
            den = np.array([run[k][ratio[1]] for k in keys], float)[draw].sum(1)
            values.append(num / den)
        return np.mean(values, axis=0)

    diff = cell(runs_a) - cell(runs_b)
    return tuple(np.percentile(diff, [100 * (1 - level) / 2, 100 * (1 + level) / 2]))


def test_difference_interval_matches_a_restatement_with_the_same_draws():
    from wsbench.bootstrap import difference_interval, iou_interval

    rng = np.random.default_rng(7)
    keys = [f"before/v{i:02d}" for i in range(8)]

    def run(shift):
        union = rng.integers(100, 300, len(keys))
        return _counts(keys, np.minimum(union, rng.integers(0, 100, len(keys)) + shift), union)

    a, b = [run(40), run(40)], [run(0), run(0), run(0)]
    low, high = difference_interval(a, b)
    assert (low, high) == pytest.approx(_restated_difference(a, b), abs=1e-12)
    assert low > 0  # A's intersections are larger on every video
    per_frame = difference_interval(a, b, metric="iou_illegal_per_frame")
    assert per_frame == pytest.approx(_restated_difference(a, b, ("iou_frame_sum", "frames")), abs=1e-12)
    # the same draws as each cell's own interval: a cell minus itself is exactly 0 in every resample
    assert difference_interval(a, a) == (0.0, 0.0)
    assert iou_interval(a) != (0.0, 0.0)
    assert difference_interval(a, []) is None


def test_difference_interval_by_hand():
    """Two videos, A = (1/2, 3/4), B = (0/2, 2/4): a resample draws v0v0, v0v1 or v1v1 (1/4, 1/2, 1/4 of
    the time), giving A − B = 2/4 − 0/4 = 0.5, 4/6 − 2/6 = 1/3 or 6/8 − 4/8 = 0.25, so the paired interval
    is exactly [0.25, 0.5]; the cells' own intervals [0.5, 0.75] and [0, 0.5] touch."""
    from wsbench.bootstrap import difference_interval, iou_interval

    keys = ["before/v0", "before/v1"]
    a, b = _counts(keys, [1, 3], [2, 4]), _counts(keys, [0, 2], [2, 4])
    assert iou_interval([a]) == (0.5, 0.75) and iou_interval([b]) == (0.0, 0.5)
    assert difference_interval([a], [b]) == pytest.approx((0.25, 0.5))


def _fake_run(runs_dir, method, seed, videos, metrics=None, baselines=None):
    """A finished run as execute() records it; by default both IoU forms made from its per-video counts
    (``metrics``/``baselines``: the result's instead)."""
    import dataclasses

    from wsbench.files import config_hash
    from wsbench.methods import create_method, method_info
    from wsbench.runs import create_run, finish_run

    m = create_method(method)
    fusion = m.fusion()
    semantic = {"method": method, "method_options": dataclasses.asdict(m.options), "dataset": "synthetic-belt",
                "data_root": None, "split_seed": 0, "seed": seed, "recipe": {"epochs": 8},
                "fusion": dataclasses.asdict(fusion) if fusion else None}
    config = dict(semantic, config_hash=config_hash(semantic), label=None, dataset_info={"static_after": False},
                  classifier={"method": m.classifier()[0], "options": m.classifier()[1]}, method_info=method_info(m))
    record = create_run(runs_dir, config)
    if metrics is None:
        pooled = sum(v["intersection"] for v in videos.values()) / sum(v["union"] for v in videos.values())
        per_frame = sum(v["iou_frame_sum"] for v in videos.values()) / sum(v["frames"] for v in videos.values())
        metrics = {"iou_illegal": pooled, "iou_illegal_per_frame": per_frame, "miou": pooled, "threshold": 0.5}
    baselines = baselines or {"all_foreground": {"iou_illegal": 0.2, "iou_illegal_per_frame": 0.25}}
    result = {"run_id": record.run_id, "method": method, "dataset": "synthetic-belt", "seed": seed,
              "config_hash": config["config_hash"], "metrics": metrics, "baselines": baselines,
              "counts": {"test_videos": videos}, "config": config}
    return finish_run(record, result)


@pytest.fixture
def three_methods(tmp_path):
    """tccam clearly above cam on every test video, puzzlecam within noise of tccam; 3 seeds each."""
    rng = np.random.default_rng(11)
    keys = [f"before/v{i:03d}" for i in range(10)]
    union = rng.integers(200, 400, len(keys))
    base = rng.integers(60, 120, len(keys))
    made: dict[str, list] = {}
    for seed in range(3):
        for method, inter in (("tccam", base + 60), ("puzzlecam", base + 60 + rng.integers(-8, 9, len(keys))),
                              ("cam", base)):
            made.setdefault(method, []).append(_fake_run(tmp_path / "runs", method, seed,
                                                         _counts(keys, inter, union)))
    return tmp_path / "runs", made


def test_leaderboard_ci_marks_columns_below_the_rows_best(three_methods):
    from wsbench.bootstrap import difference_interval
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    runs_dir, made = three_methods
    table = comparison(iter_runs(runs_dir), ci=True)
    cells = dict(zip(table.columns, table.rows[0][1], strict=True))
    best = max(("TC-CAM", "PuzzleCAM"), key=lambda c: cells[c].mean)
    other = "PuzzleCAM" if best == "TC-CAM" else "TC-CAM"
    counts = {m: [r.result["counts"]["test_videos"] for r in rs] for m, rs in made.items()}
    name = {"TC-CAM": "tccam", "PuzzleCAM": "puzzlecam"}
    low, high = difference_interval(counts[name[best]], counts["cam"])
    assert low > 0 and cells["CAM"].below_best and cells["CAM"].text.endswith("§")
    low, high = difference_interval(counts[name[best]], counts[name[other]])
    assert low <= 0 <= high and not cells[other].below_best and not cells[best].below_best
    assert "§: the paired interval of the row's best minus this cell" in table.caption
    assert "Pooled: Σ intersection / Σ union over all test frames" in table.caption
    plain = comparison(iter_runs(runs_dir))
    assert not any(c.below_best for c in plain.rows[0][1])


def test_pairs_table_in_every_format(three_methods):
    import csv
    import io

    from click.testing import CliRunner

    from wsbench.bootstrap import difference_interval
    from wsbench.cli import cli

    runs_dir, made = three_methods

    def board(*args):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs_dir), "--table", "pairs", *args])
        assert result.exit_code == 0, result.output
        return result.output

    payload = json.loads(board("--format", "json"))[0]
    rows = {r["row"]: r["cells"] for r in payload["rows"]}
    assert len(rows) == 3  # every pair of the three columns
    assert list(rows) == ["synthetic-belt: PuzzleCAM − TC-CAM", "synthetic-belt: PuzzleCAM − CAM",
                          "synthetic-belt: TC-CAM − CAM"]  # A left of B in the comparison
    diff, wins = rows["synthetic-belt: TC-CAM − CAM"]
    ious = {m: [r.result["metrics"]["iou_illegal"] for r in rs] for m, rs in made.items()}
    assert diff["mean"] == pytest.approx(100 * (np.mean(ious["tccam"]) - np.mean(ious["cam"])))
    low, high = difference_interval([r.result["counts"]["test_videos"] for r in made["tccam"]],
                                    [r.result["counts"]["test_videos"] for r in made["cam"]])
    assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((100 * low, 100 * high))
    assert wins["text"] == "3/3" and diff["text"].endswith("§")
    assert "paired 95 % percentile bootstrap interval" in payload["caption"]
    md = board()
    assert "| synthetic-belt: TC-CAM − CAM" in md and "Pairs: illegal IoU (pooled)" in md
    latex = board("--format", "latex")
    assert "\\S{}" in latex and "tab:wsbench-pairs" in latex
    tidy = list(csv.DictReader(io.StringIO(board("--format", "csv"))))
    assert {r["table"] for r in tidy} == {"pairs"} and len(tidy) == 6
    per_frame = json.loads(board("--format", "json", "--metric", "iou_illegal_per_frame"))[0]
    assert "Per-frame mean: every test frame's own IoU averaged" in per_frame["caption"]
    assert all(r["cells"][0]["ci_low"] is not None for r in per_frame["rows"])


def test_every_metric_caption_says_its_form(three_methods):
    from wsbench.report import METRIC_FORMS, METRICS, ablation, comparison
    from wsbench.runs import iter_runs

    runs_dir, _ = three_methods
    assert set(METRIC_FORMS) == set(METRICS)
    for metric in METRICS:
        for build in (comparison, ablation):
            assert METRIC_FORMS[metric] in build(iter_runs(runs_dir), metric).caption


# -- item 5: the official PuzzleCAM ramp -------------------------------------------------------------
def test_linear_ramp_is_the_official_puzzlecam_schedule():
    """100 steps of 10 per epoch, α = 4: the official code's min(α, α·step / (0.5·steps)) from step 0
    (hand values), beside the paper's ramp (0 for the first epoch)."""
    from wsbench.losses import ramp_weight
    from wsbench.methods import Progress, create_method

    def at(step, ramp):
        return ramp_weight(4.0, Progress(epoch=step // 10, step=step, steps_per_epoch=10, total_steps=100), ramp)

    assert [at(s, "linear") for s in (0, 5, 25, 49, 50, 99)] == pytest.approx([0.0, 0.4, 2.0, 3.92, 4.0, 4.0])
    assert [at(s, "ramp") for s in (0, 5, 10, 30, 50)] == pytest.approx([0.0, 0.0, 0.0, 2.0, 4.0])
    method = create_method("puzzlecam", weight_ramp="linear")
    assert method.alpha(Progress(epoch=0, step=5, steps_per_epoch=10, total_steps=100)) == pytest.approx(0.4)
    tccam = create_method("tccam", weight_ramp="linear", beta_max=6.0)
    assert tccam.beta(Progress(epoch=0, step=25, steps_per_epoch=10, total_steps=100)) == pytest.approx(3.0)


# -- item 5: the suite's [sweep] -----------------------------------------------------------------------
def _sweep_spec(path, tiny_belt, extra=""):
    path.write_text(f"""
name = "tiny-sweep"
datasets = ["video-folder"]
seeds = [0, 1]
tables = ["comparison", "ablation"]

[recipe]
name = "smoke"
image_size = [32, 32]

[datasets_options."video-folder"]
data_root = "{tiny_belt}"

[[runs]]
method = "cam"

[[runs]]
method = "puzzlecam"

[sweep.puzzlecam]
alpha_max = [0.5, 8.0]
{extra}""")
    return path


def test_suite_sweep_keeps_the_point_chosen_on_validation(tiny_belt, tmp_path):
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.runs import iter_runs

    spec = _sweep_spec(tmp_path / "sweep.toml", tiny_belt)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["suite", str(spec), "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 0, result.output
    records = list(iter_runs(runs))
    puzzle = [r for r in records if r.config["method"] == "puzzlecam"]
    assert sorted((r.config["method_options"]["alpha_max"], r.config["seed"]) for r in puzzle) == \
        [(0.5, 0), (0.5, 1), (8.0, 0), (8.0, 1)]  # every grid point, every seed
    # the choice restated: the point with the higher mean val IoU over the two seeds (ties: the first)
    val = {a: np.mean([r.result["metrics"]["val_iou_illegal"] for r in puzzle
                       if r.config["method_options"]["alpha_max"] == a]) for a in (0.5, 8.0)}
    chosen = 0.5 if val[0.5] >= val[8.0] else 8.0
    stored = json.loads((runs / "sweeps" / "tiny-sweep.json").read_text())
    (choice,) = stored["choices"]
    assert choice["chosen"] == {"alpha_max": chosen} and choice["grid"] == {"alpha_max": [0.5, 8.0]}
    assert {p["options"]["alpha_max"]: p["val_iou_illegal"] for p in choice["points"]} == pytest.approx(val)
    # the table shows one PuzzleCAM column: the chosen point's test score, and a footnote with grid and choice
    test = np.mean([r.result["metrics"]["iou_illegal"] for r in puzzle
                    if r.config["method_options"]["alpha_max"] == chosen])
    comparison = result.output[result.output.index("**Comparison"):result.output.index("**Ablation")]
    (row,) = [line for line in comparison.splitlines() if line.startswith("| video-folder")]
    header = next(line for line in comparison.splitlines() if line.startswith("| illegal IoU"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip().strip("*").replace("<u>", "").replace("</u>", "") for c in row.strip("|").split("|")]
    assert columns.count("PuzzleCAM (tuned on val)") == 1 and not any("alpha" in c for c in columns)
    assert cells[columns.index("PuzzleCAM (tuned on val)")].startswith(f"{100 * test:.2f}")
    assert f"PuzzleCAM (tuned on val): tuned on validation over alpha_max ∈ {{0.5, 8.0}} (2 configurations × 2 " \
           f"seed(s)) on video-folder; chosen alpha_max={chosen}" in result.output
    assert "only its test score is shown" in result.output
    # the ablation's "Only spatial" is the tuned PuzzleCAM too (neither grid point is PuzzleCAM's default alpha)
    ablation = result.output[result.output.index("**Ablation"):]
    (abl_row,) = [line for line in ablation.splitlines() if line.startswith("| video-folder")]
    abl_cells = [c.strip().strip("*").replace("<u>", "").replace("</u>", "") for c in abl_row.strip("|").split("|")]
    assert abl_cells[3].startswith(f"{100 * test:.2f}"), abl_row  # None, Only temporal, Only spatial
    # wsbench leaderboard --suite applies the same choice to the runs directory: the suite's comparison again
    board = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--suite", str(spec), "--table",
                                     "comparison"])
    assert board.exit_code == 0, board.output
    suite_table = result.output[result.output.index("**Comparison"):].split("\n\n**")[0]
    assert board.output.startswith(suite_table.rstrip("\n")), board.output
    assert f"chosen alpha_max={chosen}" in board.output
    plain = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison"])
    assert "PuzzleCAM (tuned on val)" not in plain.output and "alpha" in plain.output  # every grid point


def test_sweep_of_a_method_without_runs_or_a_bad_value_is_refused(tiny_belt, tmp_path):
    from wsbench.errors import UserError
    from wsbench.suite import load_spec

    with pytest.raises(UserError, match="sweep.tccam: the spec has no \\[\\[runs\\]\\] entry of method 'tccam'"):
        load_spec(_sweep_spec(tmp_path / "a.toml", tiny_belt, "[sweep.tccam]\nbeta_max = [4.0]\n"))
    with pytest.raises(UserError, match="sweep.puzzlecam"):
        load_spec(_sweep_spec(tmp_path / "b.toml", tiny_belt, "weight_ramp = ['ramp', 'sideways']\n"))


# -- item 6: smaller points ----------------------------------------------------------------------------
def test_temporal_loss_on_background_clips_is_an_option():
    """Two clips, objects (before) and background: by default the temporal loss is that of both clips;
    --no-temporal-background gives exactly that of the object clip alone."""
    from wsbench.losses import temporal_loss
    from wsbench.methods import Batch, Progress, create_method
    from wsbench.model import CamNet

    torch.manual_seed(0)
    model = CamNet("wsbench_resnet_tiny", output_stride=8)
    images = torch.randn(2 * 3, 3, 32, 32)
    labels = torch.tensor([[1.0, 0, 0]] * 3 + [[0, 0, 1.0]] * 3)
    flows = torch.randn(2, 3, 2, 2, 4, 4)
    batch = Batch(images=images, labels=labels, clip_len=3, flows=flows)
    progress = Progress(epoch=0, step=0, steps_per_epoch=1, total_steps=1)
    with torch.no_grad():
        maps = model(images).view(2, 3, 3, 4, 4)
        both = create_method("tccam").training_losses(model, batch, progress)["temporal"].value
        objects = create_method("tccam", temporal_background=False).training_losses(model, batch,
                                                                                      progress)["temporal"].value
        assert both == pytest.approx(temporal_loss(maps, flows, labels[::3]).item(), abs=1e-6)
        assert objects == pytest.approx(temporal_loss(maps[:1], flows[:1], labels[:1]).item(), abs=1e-6)
        assert objects != pytest.approx(both.item(), abs=1e-6)


def test_gradcam_caption_says_it_explains_another_classifier(tmp_path):
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    keys = ["before/v0"]
    _fake_run(tmp_path / "runs", "cam", 0, _counts(keys, [1], [4]))
    assert "two classifiers" not in comparison(iter_runs(tmp_path / "runs")).caption
    _fake_run(tmp_path / "runs", "gradcam", 0, _counts(keys, [1], [3]))
    caption = comparison(iter_runs(tmp_path / "runs")).caption
    assert "GradCAM explains a standard classifier (global average pooling + linear head) trained apart" in caption
    assert "a difference to CAM compares two classifiers" in caption


def test_ignore_band_warns_when_it_misses_the_threshold():
    from wsbench.distill import ignore_band_warning

    assert ignore_band_warning(None, 0.42) is None
    assert ignore_band_warning((0.3, 0.7), 0.42) is None
    assert ignore_band_warning((0.3, 0.7), 0.3) is None  # [low, high): low is inside
    for band in ((0.5, 0.9), (0.1, 0.42)):
        text = ignore_band_warning(band, 0.42)
        assert text is not None and f"--ignore-band {band[0]},{band[1]}" in text and "threshold 0.42" in text
