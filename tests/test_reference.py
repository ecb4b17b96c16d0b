"""The supervised reference: the distill recipe's segmenter trained on the val split's GT masks
(``wsbench distill --supervised-reference``), scored on test, shown in the comparison and stages tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.registry import UnknownEntryError

COLUMN = "supervised reference (val GT)"


def _args(runs: Path, cache: Path, data: Path, *more: str) -> list[str]:
    return ["distill", "--supervised-reference", "--dataset", "video-folder", "--data-root", str(data),
            "--cam-recipe", "smoke", "--recipe", "smoke", "--runs-dir", str(runs), "--cache-dir", str(cache), "-q",
            *more]


@pytest.fixture(scope="module")
def reference(tiny_run, tmp_path_factory):
    """A reference run beside the session's tiny ``cam`` run (copied): (runs dir, cache dir, reference run dir)."""
    copy = tiny_run.copy(tmp_path_factory.mktemp("reference"))
    result = CliRunner().invoke(cli, _args(copy.runs, copy.cache, copy.data))
    assert result.exit_code == 0, result.output
    assert "supervised reference" in result.output and "test IoU" in result.output
    (out,) = [p for p in copy.runs.iterdir() if "supervised-reference" in p.name]
    return copy.runs, copy.cache, out


def test_reference_run_record(reference, tiny_belt):
    from wsbench.data import create_dataset
    from wsbench.runs import RunRecord, is_distilled, is_reference

    _, _, run_dir = reference
    record = RunRecord.load(run_dir)
    assert is_reference(record.config) and not is_distilled(record.config)
    result = record.result
    metrics = result["metrics"]
    # val is the reference's training data: the evaluator scores test only and cuts at the fixed 0.5
    assert metrics["threshold_source"] == "fixed" and metrics["threshold"] == 0.5
    assert result["counts"]["val_frames"] == 0 and result["counts"]["test_frames"] > 0
    assert metrics["val_iou_illegal"] is None and 0 <= metrics["iou_illegal"] <= 1
    index = create_dataset("video-folder", root=tiny_belt)
    val = [v for v in index.videos if v.split == "val"]
    budget = result["reference"]["budget"]
    assert budget == {"before_frames": sum(m is not None for v in val if v.label == "before" for m in v.masks or []),
                      "after_frames": sum(len(v) for v in val if v.label == "after"), "videos": len(val)}
    assert budget["before_frames"] > 0 and budget["after_frames"] > 0
    assert result["reference"]["image_size"] == [32, 32]  # the smoke distill recipe's
    assert record.config["reference"]["segmenter"]["architecture"] == "Unet"
    assert (run_dir / "segmenter.pt").is_file()


def test_labels_are_gt_inside_the_foreground(reference, tiny_belt):
    """reference_labels against a restatement: illegal = GT (shrunk like the foreground) ∩ foreground, legal =
    the rest of the foreground, after frames never illegal; before frames without GT are left out."""
    import cv2

    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.data.io import read_mask
    from wsbench.distill.reference import reference_labels
    from wsbench.recipes import named_recipe

    _, cache, _ = reference
    data = prepare(create_dataset("video-folder", root=tiny_belt), (32, 32), cache,
                   background=named_recipe("smoke").recipe())
    index, labels, _ = reference_labels(data)
    expected, where = [], []
    for pos, video in enumerate(data.index.videos):
        for i in range(len(video)):
            mask = video.masks[i] if video.masks else None
            if video.split != "val" or (video.label == "before" and mask is None):
                continue
            fg = data.fg[data.slices[pos].start + i] > 0
            gt = np.zeros_like(fg)
            if video.label == "before":
                full = read_mask(mask, data.slices[pos].frame_size).astype(np.uint8) * 255
                gt = cv2.resize(full, (32, 32), interpolation=cv2.INTER_AREA) > 127
            expected.append(np.where(gt & fg, 2, np.where(fg, 1, 0)).astype(np.uint8))
            where.append(data.slices[pos].start + i)
    assert index.tolist() == where
    assert np.array_equal(labels, np.stack(expected))
    assert (labels == 2).any() and (labels == 1).any() and (labels == 0).any()


def test_no_test_mask_is_read_before_scoring(reference, tiny_belt, monkeypatch):
    import wsbench.data.io as io
    import wsbench.evaluate as evaluate
    from wsbench.data import create_dataset
    from wsbench.distill import distill_recipe
    from wsbench.distill.reference import ReferenceData, supervised_reference

    runs, cache, _ = reference
    index = create_dataset("video-folder", root=tiny_belt)
    split_of = {str(Path(m).resolve()): v.split for v in index.videos for m in v.masks or [] if m is not None}
    events: list[str] = []

    def spy(real):
        def read(path, *args, **kwargs):
            events.append(split_of.get(str(Path(path).resolve()), "other"))
            return real(path, *args, **kwargs)
        return read

    real_evaluate = evaluate.evaluate_maps

    def scoring(*args, **kwargs):
        events.append("scoring")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(io, "read_mask", spy(io.read_mask))
    monkeypatch.setattr(evaluate, "read_mask", spy(evaluate.read_mask))
    monkeypatch.setattr(evaluate, "evaluate_maps", scoring)
    supervised_reference(ReferenceData("video-folder", str(tiny_belt), cam_recipe="smoke"), runs,
                         distill_recipe("smoke"), seed=1, device="cpu", cache_dir=cache)
    start = events.index("scoring")
    assert set(events[:start]) == {"val"}  # training read val GT masks, nothing else
    assert set(events[start + 1:]) == {"test"}  # the evaluator: test masks only (val's are hidden from it)


def test_tables_show_the_reference_in_every_format(reference, tiny_run):
    runs, _, _ = reference
    for fmt in ("markdown", "latex", "csv", "json"):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison",
                                          "--format", fmt])
        assert result.exit_code == 0, result.output
        assert COLUMN in result.output and "fixed threshold" in result.output.replace("\n", " ") or fmt == "csv"
        assert "GT-masked before frames" in result.output or fmt == "csv"
    csv = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison", "--format",
                                   "csv"]).output
    (line,) = [row for row in csv.splitlines() if COLUMN in row]
    values = [100 * json.loads((p / "result.json").read_text())["metrics"]["iou_illegal"]
              for p in runs.iterdir() if "supervised-reference" in p.name]  # one per seed (another test adds one)
    fields = line.split(",")
    assert float(fields[4]) == pytest.approx(np.mean(values), abs=1e-4) and int(fields[6]) == len(values)
    assert fields[-2] == "" and fields[-1] == "0"  # never marked best or second, never collapsed
    markdown = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison"]).output
    header = next(row for row in markdown.splitlines() if COLUMN in row and row.startswith("|"))
    assert header.index("all-foreground") < header.index(COLUMN) < header.index("foreground recall")
    for fmt in ("markdown", "csv", "json"):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "stages",
                                          "--format", fmt])
        assert result.exit_code == 0 and COLUMN in result.output, result.output
    # the other tables leave it out; a runs folder without a reference shows no reference column
    for table in ("ablation", "pairs", "background"):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", table])
        assert result.exit_code == 0 and COLUMN not in result.output and "supervised" not in result.output
    plain = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(tiny_run.runs), "--table", "comparison"])
    assert plain.exit_code == 0 and COLUMN not in plain.output


def test_stages_row_from_stored_records(reference):
    from wsbench.runs import iter_runs
    from wsbench.stages import stages_frame

    runs, _, run_dir = reference
    df, _ = stages_frame(iter_runs(runs))
    rows = df[df.method == COLUMN].set_index("run_id")
    record = json.loads((run_dir / "result.json").read_text())
    assert rows.loc[run_dir.name, "segmenter"] == pytest.approx(100 * record["metrics"]["iou_illegal"])
    assert rows.cam.isna().all() and rows.pseudo.isna().all() and (rows.data == "video-folder").all()


@pytest.mark.slow
def test_resume_gives_identical_weights(reference, tiny_belt, monkeypatch):
    import wsbench.distill.training as training
    from wsbench.distill import distill_recipe
    from wsbench.distill.reference import ReferenceData, supervised_reference
    from wsbench.files import load_torch

    runs, cache, _ = reference
    spec, recipe = ReferenceData("video-folder", str(tiny_belt), cam_recipe="smoke"), distill_recipe("smoke", epochs=2)
    whole = supervised_reference(spec, runs, recipe, seed=3, device="cpu", cache_dir=cache)
    real_save = training.save_state

    def interrupted(path, state):
        real_save(path, state)
        if path.name == "checkpoint.pt" and state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        supervised_reference(spec, runs, recipe, seed=3, device="cpu", cache_dir=cache)
    monkeypatch.setattr(training, "save_state", real_save)
    resumed = supervised_reference(spec, runs, recipe, seed=3, device="cpu", cache_dir=cache, resume=True)
    assert resumed.run_id != whole.run_id and resumed.config["config_hash"] == whole.config["config_hash"]
    assert len([p for p in runs.iterdir() if (p / "config.json").is_file() and p.name == resumed.run_id]) == 1
    a, b = load_torch(whole.path / "segmenter.pt"), load_torch(resumed.path / "segmenter.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.result["metrics"] == whole.result["metrics"]


def test_bad_options_are_one_line_errors(reference, tiny_belt):
    from wsbench.distill import distill_recipe
    from wsbench.distill.reference import ReferenceData, supervised_reference

    runs, cache, run_dir = reference
    cases = [(["distill", "--runs-dir", str(runs)], "give --run RUN"),
             (["distill", "--supervised-reference", "--runs-dir", str(runs)], "give --dataset D"),
             (["distill", "--supervised-reference", "--run", "x", "--dataset", "video-folder"], "leave out --run"),
             (["distill", "--run", "x", "--dataset", "video-folder"], "--dataset is an option of"),
             (_args(runs, cache, tiny_belt, "--ignore-band", "0.2,0.6"), "no uncertain pixels"),
             (["distill", "--run", str(run_dir), "--recipe", "smoke", "--runs-dir", str(runs)], "not a CAM run"),
             (["export", "--run", str(run_dir), "--runs-dir", str(runs), "--out", str(runs.parent / "x")],
              "is a supervised reference")]
    for args, message in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(UnknownEntryError, match="unknown dataset .no-such-set."):
        supervised_reference(ReferenceData("no-such-set"), runs, distill_recipe("smoke"), cache_dir=cache)
    assert "--supervised-reference" in CliRunner().invoke(cli, ["distill", "--help"]).output
