"""Collapse is never a silent number: the rules, the record, the warnings, the tables; stability that a
constant map cannot win; the harder belt variants."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.test_report import fake_run
from wsbench.cli import cli
from wsbench.collapse import (
    FALL_SHARE,
    FLAT_SHARE,
    SPREAD_TOLERANCE,
    STALL_SHARE,
    chance_bound,
    chance_loss,
    epoch_means,
    judge,
    likely_cause,
    stall,
    warning_text,
)
from wsbench.evaluate import BINS, IoUSweep, StabilitySweep, score_bins
from wsbench.report import comparison, render
from wsbench.runs import RunRecord, iter_runs

TINY = ["--recipe", "smoke", "--epochs", "3", "-q"]


# -- the rules -------------------------------------------------------------------------------------
def test_chance_bound_hand_counted_and_judge_reasons():
    # 100 balanced frames: 0.5 + 2.326 * sqrt(0.25 / 100) = 0.5 + 2.326 * 0.05
    assert chance_bound(0.5, 100) == pytest.approx(0.6163)
    # 75 of 100 frames of one class: 0.75 + 2.326 * sqrt(0.1875 / 100)
    assert chance_bound(0.75, 100) == pytest.approx(0.75 + 2.326 * 0.0433013, abs=1e-6)
    assert judge(0.61, 0.5, 100, 0.2)["reasons"] == ["chance"]
    assert judge(0.62, 0.5, 100, 0.2) is None
    assert judge(0.9, 0.5, 100, SPREAD_TOLERANCE / 2)["reasons"] == ["flat_maps"]
    both = judge(0.5, 0.5, 100, 0.0)
    assert both["reasons"] == ["chance", "flat_maps"] and both["chance_bound"] == pytest.approx(0.6163)
    assert judge(0.0, 1.0, 40, 0.3) is None  # a validation split of one class cannot show chance
    assert judge(None, None, 0, None) is None
    with pytest.raises(ValueError):
        chance_bound(0.5, 0)


def test_chance_loss_is_the_loss_of_the_best_predictor_blind_to_before_and_after():
    """The reference: torch's multi-label soft margin of the predictor that knows background images but
    gives before and after their shares on object images, on a hand-made label set."""
    counts = {"before": 30, "after": 10, "background": 40}
    classes = ("before", "after", "background")
    labels = torch.zeros(80, 3)
    labels[:30, 0], labels[30:40, 1], labels[40:, 2] = 1, 1, 1
    r = 30 / 40
    big = 40.0  # a saturated logit: probability 1 - 4e-18
    logits = torch.tensor([[math.log(r / (1 - r)), math.log((1 - r) / r), -big]] * 40 + [[-big, -big, big]] * 40)
    reference = torch.nn.functional.multilabel_soft_margin_loss(logits.double(), labels.double())
    assert chance_loss(counts, classes) == pytest.approx(float(reference), rel=1e-9)
    # hand count, two balanced classes without background: ln 2
    assert chance_loss({"before": 5, "after": 5}, ("before", "after")) == pytest.approx(math.log(2))
    assert chance_loss({}, classes) == 0.0


def _log(cls: list[float], other: list[float], weight: list[float], steps: int = 3) -> list[dict[str, str]]:
    """log.csv rows (strings, as csv reads them) of a training with a cls and a temporal term."""
    rows = []
    for epoch, (c, o, w) in enumerate(zip(cls, other, weight, strict=True)):
        for k in range(steps):
            rows.append({"epoch": str(epoch), "step": str(epoch * steps + k), "lr": "0.1", "total": str(c + w * o),
                         "cls": str(c), "temporal": str(o), "weight:cls": "1.0", "weight:temporal": str(w)})
    return rows


def test_stall_names_the_falling_term_its_weight_and_the_epoch():
    chance = 0.231
    stuck = epoch_means(_log([0.40, 0.30, 0.25, 0.24], [0.05, 0.04, 0.02, 0.01], [0.0, 4.0, 12.0, 12.0]))
    assert [e["epoch"] for e in stuck] == [0, 1, 2, 3] and stuck[1]["weight:temporal"] == 4.0
    found = stall(stuck, chance)
    # epoch 1: cls 0.30 >= 0.9 * chance, temporal 0.04 > 0.5 * 0.05; epoch 2: cls still falling (0.25 <= 0.95 *
    # 0.30); epoch 3: stuck (0.24 > 0.95 * 0.25) and temporal 0.01 <= 0.025
    assert found is not None and (found.epoch, found.term, found.weight) == (3, "temporal", 12.0)
    assert 0.24 >= STALL_SHARE * chance and 0.24 > FLAT_SHARE * 0.25 and 0.25 <= FLAT_SHARE * 0.30
    assert 0.01 <= FALL_SHARE * 0.05
    assert "epoch 4" in found.text() and "temporal" in found.text() and "weight 12" in found.text()
    assert likely_cause(stuck, chance) == found.text()
    healthy = epoch_means(_log([0.40, 0.15, 0.08, 0.05], [0.05, 0.04, 0.02, 0.01], [0.0, 4.0, 12.0, 12.0]))
    assert stall(healthy, chance) is None
    # measured (hard belt variant, seed 0, cpu recipe): near chance for three epochs but falling, then learnt
    slow = epoch_means(_log([0.4173, 0.2249, 0.2124, 0.1969], [0.0311, 0.0205, 0.0122, 0.0096], [0, 2, 6, 10]))
    assert stall(slow, chance) is None
    assert "largest other term in the last epoch was temporal (weight 12" in likely_cause(healthy, chance)
    assert stall(stuck, None) is None and likely_cause([], None) == "no training log to tell the cause"


def test_warning_text_names_what_failed_and_the_cause():
    flagged = dict(judge(0.5, 0.5, 100, 0.0), cause="the temporal term did it")
    text = warning_text("tccam on belt (seed 0)", flagged)
    assert "COLLAPSED" in text and "at chance" in text and "flat" in text and "0.500 <= 0.616" in text
    assert text.endswith("Likely cause: the temporal term did it")


# -- map content and a stability a constant map cannot win -------------------------------------------
def test_spread_is_the_std_of_the_binned_foreground_scores():
    rng = np.random.default_rng(0)
    sweep = IoUSweep()
    values = []
    for _ in range(3):
        scores, fg, gt = rng.random((9, 11)), rng.random((9, 11)) < 0.6, rng.random((9, 11)) < 0.3
        sweep.add(scores, fg, gt)
        values.append((score_bins(scores)[fg] + 0.5) / BINS)
    assert sweep.spread() == pytest.approx(float(np.std(np.concatenate(values))), rel=1e-9)
    flat = IoUSweep()
    flat.add(np.full((9, 11), 0.7), np.ones((9, 11), bool), np.zeros((9, 11), bool))
    assert flat.spread() == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(IoUSweep().spread())


def _video(kind: str, t: int = 6, h: int = 16, w: int = 20) -> torch.Tensor:
    rng = np.random.default_rng(1)
    if kind == "constant":
        return torch.ones(t, h, w)
    if kind == "empty":
        return torch.zeros(t, h, w)
    if kind == "noise":
        return torch.from_numpy(rng.random((t, h, w))).float()
    maps = torch.zeros(t, h, w)  # a blob that moves 1 px a frame along +x, as the flow says
    for i in range(t):
        maps[i, 4:10, 3 + i:9 + i] = 1.0
        maps[i, 5:9, 4 + i:8 + i] = 0.6
    return maps


def test_map_stability_matches_the_pearson_correlation():
    """Zero flow: each frame is compared with the next in place; the reference is numpy's corrcoef (binned maps)."""
    rng = np.random.default_rng(2)
    scores = torch.from_numpy(rng.random((4, 8, 10))).float()
    fg = torch.from_numpy(rng.random((4, 8, 10)) < 0.7)
    sweep = StabilitySweep()
    sweep.add_video(scores, fg, torch.zeros(4, 2, 8, 10))
    bins = score_bins(scores.numpy()) / BINS
    both = fg[:-1].numpy() & fg[1:].numpy()
    expected = np.corrcoef(bins[:-1][both], bins[1:][both])[0, 1]
    assert sweep.map_stability() == pytest.approx(max(0.0, float(expected)), rel=1e-9)
    # a frame and its own copy: correlation 1; a frame and its negative: -1, counted as 0
    same, flipped = StabilitySweep(), StabilitySweep()
    same.add_video(torch.stack([scores[0], scores[0]]), torch.ones(2, 8, 10), torch.zeros(2, 2, 8, 10))
    flipped.add_video(torch.stack([scores[0], 0.999 - scores[0]]), torch.ones(2, 8, 10), torch.zeros(2, 2, 8, 10))
    assert same.map_stability() == pytest.approx(1.0) and flipped.map_stability() == 0.0
    assert math.isnan(StabilitySweep().map_stability())


def test_a_constant_map_ranks_last_on_map_stability_though_first_on_mask_stability():
    t, h, w = 6, 16, 20
    flow = torch.zeros(t, 2, h, w)
    flow[:, 0] = 1.0  # flow t -> t+1: the belt moves 1 px a frame along +x
    fg = torch.ones(t, h, w, dtype=torch.bool)
    scores = {}
    for kind in ("moving", "noise", "constant", "empty"):
        sweep = StabilitySweep()
        sweep.add_video(_video(kind, t, h, w), fg, flow)
        scores[kind] = (sweep.map_stability(), sweep.stability()[0], sweep.stability()[50])
    ranking = sorted(scores, key=lambda k: scores[k][0], reverse=True)
    assert ranking[0] == "moving" and scores["moving"][0] > 0.9
    assert scores["constant"][0] == 0.0 and scores["empty"][0] == 0.0 and scores["noise"][0] < 0.2
    assert min(scores[k][0] for k in scores) == scores["constant"][0]  # last (tied with empty and noise maps)
    # the mask stability at threshold 0 (where a collapsed run's val-chosen threshold lands) ranks it first
    assert scores["constant"][1] == 1.0 and scores["constant"][1] >= max(v[1] for v in scores.values())


# -- the tables ------------------------------------------------------------------------------------------
def _collapse(record: RunRecord, reasons: list[str]) -> None:
    """Give a fake run's result.json a collapse record, as execute() writes it."""
    path = record.path / "result.json"
    result = json.loads(path.read_text())
    result["collapse"] = {"reasons": reasons, "accuracy": 0.5, "chance_bound": 0.61, "map_spread": 0.0,
                          "spread_tolerance": SPREAD_TOLERANCE, "cause": "the temporal term"}
    path.write_text(json.dumps(result))


def test_comparison_marks_a_collapsed_cell_and_never_ranks_it(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        fake_run(runs, "cam", seed, 0.30)
        fake_run(runs, "puzzlecam", seed, 0.34)
        flagged = fake_run(runs, "tccam", seed, 0.45)  # the highest number of the row
        if seed == 1:
            _collapse(flagged, ["chance", "flat_maps"])
    table = comparison(iter_runs(runs))
    cells = dict(zip(table.columns, table.rows[0][1], strict=True))
    tc = cells["TC-CAM"]
    assert tc.collapsed == 1 and tc.text.endswith("‡") and tc.mark is None
    assert cells["PuzzleCAM"].mark == "best" and cells["CAM"].mark is None
    assert not cells["all-foreground (reference)"].collapsed
    note = next(n for n in table.footnotes if n.startswith("‡"))
    assert "TC-CAM" in note and "1 of 2 run(s)" in note and "at chance" in note and "flat" in note
    text = render([table])
    assert "‡" in text and "**45.00" not in text
    column = table.columns.index("TC-CAM")
    assert json.loads(render([table], "json"))[0]["rows"][0]["cells"][column]["collapsed"] == 1


def test_ablation_and_background_mark_collapsed_cells(tmp_path):
    from wsbench.report import ablation, background

    runs = tmp_path / "runs"
    fake_run(runs, "cam", 0, 0.30)
    fake_run(runs, "puzzlecam", 0, 0.34)
    _collapse(fake_run(runs, "tccam", 0, 0.50), ["flat_maps"])
    _collapse(fake_run(runs, "gradcam", 0, 0.2), ["chance"])
    table = ablation(iter_runs(runs))
    cells = dict(zip(table.columns, table.rows[0][1], strict=True))
    assert cells["Both"].collapsed and cells["Both"].mark is None and cells["Only spatial"].mark == "best"
    assert any(n.startswith("‡") and "flat" in n for n in table.footnotes)
    bg = background(iter_runs(runs))
    assert all(c.collapsed for c in bg.rows[0][1]) and any("at chance" in n for n in bg.footnotes)


def test_stability_is_shown_beside_the_map_spread(tmp_path):
    runs = tmp_path / "runs"
    for method, stability, spread in (("cam", 0.6, 0.25), ("tccam", 0.84, 0.0)):
        record = fake_run(runs, method, 0, 0.3)
        path = record.path / "result.json"
        result = json.loads(path.read_text())
        result["metrics"].update(stability=stability, map_spread=spread)
        path.write_text(json.dumps(result))
    table = comparison(iter_runs(runs), metric="stability")
    names = [name for name, _ in table.rows]
    assert names == ["synthetic-belt", "synthetic-belt: map spread ×100"]
    spread = dict(zip(table.columns, table.rows[1][1], strict=True))
    assert spread["TC-CAM"].mean == 0.0 and spread["CAM"].mean == pytest.approx(25.0)
    assert "constant map" in table.caption


# -- a run forced to collapse -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_forced_to_collapse_is_marked_warned_and_tabled(tiny_belt, tmp_path):
    """TC-CAM with an absurd β on the tiny belt: the record says why, the training log and the run warn
    with the term and its weight, the suite lines and the leaderboard mark it."""
    runs = tmp_path / "runs"
    args = ["run", "-m", "tccam", "-d", "video-folder", "--data-root", str(tiny_belt), "--beta-max", "1000",
            "--weight-ramp", "constant", "--runs-dir", str(runs), *TINY, "--epochs", "5"]
    # 5 epochs: by the third the temporal term is only just at half its first-epoch mean (0.49-0.50 of it,
    # depending on the thread count), by the fifth well below, so the stall shows whatever the machine
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = next(iter_runs(runs))
    flagged = record.finished_result["collapse"]
    assert flagged["reasons"] and set(flagged["reasons"]) <= {"chance", "flat_maps"}
    assert "temporal" in flagged["cause"] and "1e+03" in flagged["cause"]
    messages = [line.removeprefix("warning: CollapseWarning: ") for line in result.output.splitlines()
                if line.startswith("warning: CollapseWarning: ")]  # the CLI's one-line warnings
    assert any(m.startswith("tccam training: classification loss stuck near or above chance") and "temporal" in m
               for m in messages)
    assert any("COLLAPSED" in m and "Likely cause" in m and "1e+03" in m for m in messages)
    assert "‡ COLLAPSED" in result.output
    RunRecord.load(record.path)  # the record schema accepts it

    from wsbench.suite import done_line, finished_line

    assert "COLLAPSED" in finished_line("tccam", record) and "COLLAPSED" in done_line("tccam", record)
    board = CliRunner().invoke(cli, ["leaderboard", "--table", "comparison", "--runs-dir", str(runs)])
    assert board.exit_code == 0 and "‡" in board.output and "collapsed" in board.output


# -- harder belt variants ------------------------------------------------------------------------------
def _tiny(**changes):
    from wsbench.data.synthetic import BeltConfig

    return BeltConfig(train_videos=1, val_videos=0, test_videos=0, frames=3, size=(64, 48), seed=3, **changes)


def test_harder_belt_options_leave_the_default_belt_as_it_was():
    from wsbench.data.synthetic import BeltConfig, generator_tag

    plain = BeltConfig()
    assert "shared_palette" not in plain.to_dict() and "belt_gain" not in plain.to_dict()
    assert generator_tag(BeltConfig(shared_palette=False, belt_gain=1.0)) == generator_tag(plain)
    variant = BeltConfig(shared_palette=True, belt_gain=0.6, object_size=(10.0, 24.0))
    assert variant.to_dict()["shared_palette"] is True and variant.to_dict()["belt_gain"] == 0.6
    assert BeltConfig.from_dict(variant.to_dict()) == variant
    assert generator_tag(variant) != generator_tag(plain)
    for bad in ({"belt_gain": 0.0}, {"belt_gain": "dark"}, {"shared_palette": 1}):
        with pytest.raises(Exception, match="belt config: (belt_gain|shared_palette)"):
            BeltConfig(**bad)


def test_shared_palette_colours_the_legal_objects_and_belt_gain_darkens_the_belt():
    from wsbench.data.synthetic import render_pair

    def saturation(video) -> float:
        rgb = video.frames[video.legal].astype(np.float64)
        return float((rgb.max(axis=1) - rgb.min(axis=1)).mean())

    plain, = render_pair(_tiny(), 0)[:1]
    palette, = render_pair(_tiny(shared_palette=True), 0)[:1]
    assert saturation(palette) > 1.5 * saturation(plain)  # PET is near grey, the print palette is not
    dark, = render_pair(_tiny(belt_gain=0.5), 0)[:1]
    # the same objects in the same places: only the belt changes (away from the objects' soft edges)
    objects = (plain.illegal | plain.legal).astype(np.uint8)
    belt = np.stack([cv2.dilate(o, np.ones((9, 9), np.uint8)) == 0 for o in objects])
    ratio = dark.frames[belt].mean() / plain.frames[belt].mean()
    assert belt.sum() > 200 and 0.45 < ratio < 0.55
    assert np.array_equal(dark.illegal, plain.illegal)


def test_data_synth_writes_the_harder_variants_and_refuses_a_bad_size(tmp_path):
    out = tmp_path / "hard"
    args = ["data", "synth", "--out", str(out), "--videos", "1", "--frames", "2", "--size", "32x32"]
    result = CliRunner().invoke(cli, [*args, "--shared-palette", "--object-size", "8,12", "--belt-gain", "0.5"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "belt.json").read_text())["config"]
    assert config["shared_palette"] is True and config["object_size"] == [8.0, 12.0] and config["belt_gain"] == 0.5
    bad = CliRunner().invoke(cli, [*args[:3], str(tmp_path / "other"), *args[4:], "--object-size", "12,8"])
    assert bad.exit_code == 2 and "--object-size: '12,8' is not LO,HI" in bad.output


def test_likely_cause_never_blames_a_term_of_weight_zero():
    one_epoch = epoch_means(_log([0.7], [0.05], [0.0]))
    text = likely_cause(one_epoch, 0.231)
    assert "temporal" not in text and "no other weighted loss term" in text and "1 epoch(s)" in text


def test_stages_table_marks_a_collapsed_source(tmp_path):
    from tests.test_distill import _fake
    from wsbench.stages import stages_frame, stages_table

    runs = tmp_path / "runs"
    _fake(runs, 0, 0.30, 0.40, 0.50)
    _fake(runs, 0, 0.27, 0.25, 0.26, method="tccam")
    record = next(r for r in iter_runs(runs) if r.finished_result["method"] == "tccam-distill")
    path = record.path / "result.json"
    result = json.loads(path.read_text())
    result["distill"]["source_collapse"] = {"reasons": ["chance"], "cause": "the temporal term"}
    path.write_text(json.dumps(result))
    assert list(stages_frame(iter_runs(runs))[0].source_collapse) == ["", "chance"]
    text = stages_table(iter_runs(runs))
    assert next(line for line in text.splitlines() if line.startswith("| TC-CAM‡ "))
    assert next(line for line in text.splitlines() if line.startswith("| CAM "))
    assert "‡ TC-CAM: 1 of 1 source run(s) collapsed (classifier at chance on validation)" in text
