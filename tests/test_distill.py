"""The second stage: ``wsbench distill``, its run record, resume, the ignore band, the stages table, segmenting
with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.errors import UserError


@pytest.fixture(scope="module")
def source(tiny_run, tmp_path_factory):
    """The session's finished tiny ``cam`` run, copied (a distilled run lands in its runs dir): (runs dir, cache
    dir, run dir)."""
    copy = tiny_run.copy(tmp_path_factory.mktemp("distill"))
    return copy.runs, copy.cache, copy.run_dir


@pytest.fixture(scope="module")
def distilled(source):
    """A distilled run of ``source`` with the smoke recipe and an ignore band, through the CLI: its run dir."""
    runs, cache, run_dir = source
    result = CliRunner().invoke(cli, ["distill", "--run", run_dir.name, "--runs-dir", str(runs), "--cache-dir",
                                      str(cache), "--recipe", "smoke", "--ignore-band", "0.2,0.6", "-q"])
    assert result.exit_code == 0, result.output
    assert "distilled run" in result.output and "test IoU" in result.output
    (out,) = [p for p in runs.iterdir() if "distill" in p.name]
    return out


@pytest.mark.slow
def test_distilled_run_record(source, distilled):
    _, _, run_dir = source
    src = json.loads((run_dir / "result.json").read_text())
    res = json.loads((distilled / "result.json").read_text())
    config = json.loads((distilled / "config.json").read_text())
    assert config["distill"]["source_run"] == run_dir.name
    assert config["distill"]["source_config_hash"] == src["config_hash"]
    assert res["method"] == "cam-distill" and res["config"] == config
    assert config["recipe"]["ignore_band"] == [0.2, 0.6] and config["recipe"]["encoder"] == "tu-resnet10t"
    metrics = res["metrics"]
    for key in ("iou_illegal", "miou", "threshold", "stability", "val_iou_illegal", "iou_illegal_wsws"):
        assert metrics[key] is not None and 0 <= metrics[key] <= 1, key
    assert metrics["threshold_source"] == "val"
    # the evaluator's own rows: the all-foreground reference is the source run's (same frames, same foreground)
    assert res["baselines"]["all_foreground"]["iou_illegal"] == src["baselines"]["all_foreground"]["iou_illegal"]
    info = res["distill"]
    assert info["source_iou_illegal"] == src["metrics"]["iou_illegal"]
    assert info["pseudo_labels_train"]["frames"] > 0 and 0 <= info["pseudo_labels_train"]["iou_illegal"] <= 1
    assert info["train_frames"] > 0 and info["image_size"] == [32, 32]
    assert sum(info["label_pixels"].values()) == info["train_frames"] * 32 * 32
    for key in ("pseudo_labels", "train", "maps", "maps_frames_per_second", "total"):
        assert res["timings"][key] is not None
    assert (distilled / "segmenter.pt").is_file() and (distilled / "checkpoint.pt").is_file()


def test_ignore_band_hand_counted():
    from wsbench.distill import IGNORE, ignore_band_labels
    from wsbench.inference import label_mask

    scores = np.array([[0.1, 0.3, 0.5, 0.7],
                       [0.25, 0.45, 0.55, 0.9],
                       [0.0, 0.35, 0.65, 1.0]], np.float32)
    fg = np.array([[1, 1, 1, 1],
                   [0, 1, 1, 1],
                   [1, 1, 0, 1]], bool)
    labels = label_mask(scores, fg, 0.5)
    out = ignore_band_labels(labels, scores, fg, (0.3, 0.6))
    # in [0.3, 0.6) and foreground: 0.3, 0.5 (row 0), 0.45, 0.55 (row 1), 0.35 (row 2); 0.25 is background
    assert int((out == IGNORE).sum()) == 5
    assert out[1, 0] == 0 and out[0, 3] == 2 and out[0, 0] == 1 and out[2, 2] == 0
    assert np.array_equal(out[out != IGNORE], labels[out != IGNORE])
    assert np.array_equal(ignore_band_labels(labels, scores, fg, None), labels)


@pytest.mark.slow
def test_pseudo_labels_are_the_runs_masks(source):
    """Labels equal label_mask of the run's maps at the training resolution; after frames have no illegal pixel."""
    import cv2

    from wsbench.distill import IGNORE, pseudo_labels
    from wsbench.inference import label_mask, load_run, open_data

    runs, cache, run_dir = source
    trained = load_run(run_dir, runs, "cpu")
    data = open_data(trained, cache)
    index, labels, maps_of = pseudo_labels(trained, data, data, (0.2, 0.6))
    assert labels.shape == (len(index), *data.image_size[::-1])
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, IGNORE}
    pos = next(p for p, v in enumerate(data.index.videos) if v.split == "train" and v.label == "before")
    s = data.slices[pos]
    row = list(index).index(s.start)
    fg = np.asarray(data.fg[s.start]) > 0
    scores = cv2.resize(maps_of[pos][0].numpy(), data.image_size, interpolation=cv2.INTER_LINEAR)
    expected = label_mask(scores, fg, trained.threshold)
    keep = labels[row] != IGNORE
    assert np.array_equal(labels[row][keep], expected[keep])
    for p, v in enumerate(data.index.videos):
        if v.split == "train" and v.label == "after":
            rows = [list(index).index(i) for i in range(data.slices[p].start, data.slices[p].stop)]
            assert not (labels[rows] == 2).any()
    assert all(data.index.videos[p].split == "train" for p in maps_of)


@pytest.mark.slow
def test_resume_gives_identical_weights(source, monkeypatch):
    import wsbench.distill as d
    import wsbench.distill.training as training
    from wsbench.files import load_torch

    runs, cache, run_dir = source
    recipe = d.distill_recipe("smoke", epochs=2, image_size=(32, 32))
    whole = d.distill(run_dir, runs, recipe, seed=3, device="cpu", cache_dir=cache)

    real_save, first_epoch = training.save_state, {}

    def interrupted(path, state):
        real_save(path, state)
        if path.name == "checkpoint.pt" and state["epoch"] == 1:
            first_epoch.update({k: v.clone() for k, v in state["model"].items()})
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        d.distill(run_dir, runs, recipe, seed=3, device="cpu", cache_dir=cache)
    monkeypatch.setattr(training, "save_state", real_save)
    resumed = d.distill(run_dir, runs, recipe, seed=3, device="cpu", cache_dir=cache, resume=True)
    assert resumed.run_id != whole.run_id and resumed.config["config_hash"] == whole.config["config_hash"]
    a, b = load_torch(whole.path / "segmenter.pt"), load_torch(resumed.path / "segmenter.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.result["metrics"] == whole.result["metrics"]
    # the second epoch changed the weights, so the comparison above can fail
    assert not all(torch.equal(a[k], first_epoch[k]) for k in a)


@pytest.mark.slow
def test_distill_refuses_bad_inputs(source, distilled, tmp_path):
    from wsbench.distill import distill, distill_recipe

    runs, cache, run_dir = source
    with pytest.raises(UserError, match="is a distilled run"):
        distill(distilled, runs, distill_recipe("smoke"), cache_dir=cache)
    with pytest.raises(UserError, match="multiples of 8"):
        distill_recipe("smoke", image_size=(36, 32))
    with pytest.raises(UserError, match="ignore-band"):
        distill_recipe("smoke", ignore_band=(0.7, 0.2))
    with pytest.raises(UserError, match="unknown distill recipe"):
        distill_recipe("nope")
    bad = tmp_path / "enc.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=str(bad)):
        distill(run_dir, runs, distill_recipe("smoke", pretrained=str(bad)), cache_dir=cache)
    result = CliRunner().invoke(cli, ["distill", "--run", run_dir.name, "--runs-dir", str(runs), "--encoder",
                                      "tu-no_such_model", "--recipe", "smoke", "-q"])
    assert result.exit_code != 0 and "tu-no_such_model" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["distill", "--run", run_dir.name, "--runs-dir", str(runs),
                                      "--ignore-band", "0.5"])
    assert result.exit_code != 0 and "LOW,HIGH" in result.output


def test_pretrained_encoder_from_a_local_file(tmp_path):
    from wsbench.distill import SegmenterNet, distill_recipe

    recipe = distill_recipe("smoke")
    donor = SegmenterNet(recipe)
    for p in donor.net.encoder.parameters():
        torch.nn.init.constant_(p, 0.25)
    path = tmp_path / "enc.pt"
    torch.save(donor.net.encoder.model.state_dict(), path)
    net = SegmenterNet(recipe)
    net.load_encoder(path)
    assert all(torch.equal(a, b)
               for a, b in zip(net.net.encoder.parameters(), donor.net.encoder.parameters(), strict=True))
    torch.save({"unrelated.weight": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="none of its keys"):
        SegmenterNet(recipe).load_encoder(path)


@pytest.mark.slow
def test_segment_with_a_distilled_run(source, distilled, tiny_belt, tmp_path):
    import cv2

    runs, _, _ = source
    video = sorted((tiny_belt / "before").iterdir())[0]
    out = tmp_path / "seg"
    result = CliRunner().invoke(cli, ["segment", "--run", distilled.name, "--runs-dir", str(runs), str(video),
                                      "--out", str(out), "--batch-size", "3", "-q"])
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in video.iterdir())
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == names
    info = json.loads((out / "segment.json").read_text())
    assert info["run_id"] == distilled.name and info["bg_frames"] is None and info["frames"] == len(names)
    assert info["source_run"] == json.loads((distilled / "config.json").read_text())["distill"]["source_run"]
    # the masks are the segmenter's: its probabilities at frame size cut by the recorded threshold
    from wsbench.distill import distilled_record, load_distilled

    trained = load_distilled(distilled_record(distilled, runs), "cpu")
    frame = cv2.cvtColor(cv2.imread(str(video / f"{names[0]}.png")), cv2.COLOR_BGR2RGB)
    small = cv2.resize(frame, trained.image_size, interpolation=cv2.INTER_AREA)
    probs = torch.nn.functional.interpolate(trained.probabilities(small[None]), size=frame.shape[:2],
                                            mode="bilinear", align_corners=False).numpy()
    mask = cv2.imread(str(out / "masks" / f"{names[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(mask, trained.label_masks(probs)[0])
    assert set(np.unique(mask).tolist()) <= {0, 1, 2}


@pytest.mark.slow
def test_leaderboard_stages_and_paper_tables(source, distilled):
    runs, _, _ = source
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "stages"])
    assert result.exit_code == 0, result.output
    assert "Two stages" in result.output and "| CAM " in result.output
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison"])
    assert result.exit_code == 0 and "distill" not in result.output  # distilled runs have their own table


@pytest.mark.slow
def test_export_refuses_a_distilled_run(source, distilled, tmp_path):
    runs, _, _ = source
    result = CliRunner().invoke(cli, ["export", "--run", distilled.name, "--runs-dir", str(runs), "--out",
                                      str(tmp_path / "x")])
    assert result.exit_code != 0 and "is a distilled run" in result.output and "Traceback" not in result.output


def _fake(runs: Path, seed: int, cam: float, pseudo: float, seg: float, method: str = "cam", source=None,
          **options):
    """A finished distilled run (as distill() records it, made-up numbers) of a fake source run (see
    tests/test_report.py's fake_run) of ``method`` with ``seed``, or of ``source``."""
    from wsbench.report import SOURCE_KEYS
    from wsbench.runs import create_run, finish_run

    from .test_report import fake_run

    source = source or fake_run(runs, method, seed, cam, **options)
    config = {"method": f"{method}-distill", "dataset": source.config["dataset"], "seed": seed,
              "config_hash": f"h{source.run_id}{seed}",
              "recipe": {"architecture": "Unet", "encoder": "tu-resnet18", "image_size": [32, 32]},
              "distill": {"source_run": source.run_id, "source_method": method,
                          "source_config": {k: source.config[k] for k in SOURCE_KEYS if k in source.config}}}
    record = create_run(runs, config)
    return finish_run(record, {
        "run_id": record.run_id, "method": f"{method}-distill", "dataset": config["dataset"], "seed": seed,
        "config_hash": config["config_hash"], "metrics": {"iou_illegal": seg, "threshold": 0.5},
        "timings": {"maps_frames_per_second": 100.0 + seed},
        "distill": {"source_run": source.run_id, "source_method": method, "source_seed": source.config["seed"],
                    "source_iou_illegal": cam, "source_maps_frames_per_second": 50.0,
                    "pseudo_labels_train": {"iou_illegal": pseudo, "frames": 10}, "image_size": [32, 32]},
        "config": config})


def test_stages_table_from_stored_records(tmp_path):
    from wsbench.runs import iter_runs
    from wsbench.stages import stages_frame, stages_table

    runs = tmp_path / "runs"
    _fake(runs, 0, 0.30, 0.40, 0.50)
    _fake(runs, 1, 0.34, 0.44, 0.60)
    _fake(runs, 0, 0.20, 0.25, 0.10, method="tccam")
    df, notes = stages_frame(iter_runs(runs))
    assert len(df) == 3 and notes == []
    text = stages_table(iter_runs(runs))
    cam_row = next(line for line in text.splitlines() if line.startswith("| CAM "))
    # mean ± sample std over the two seeds, ×100
    assert "32.00 ± 2.83" in cam_row and "42.00 ± 2.83" in cam_row and "55.00 ± 7.07" in cam_row
    assert "100.5 ± 0.7" in cam_row and "50.0" in cam_row
    tccam_row = next(line for line in text.splitlines() if line.startswith("| TC-CAM "))
    assert "20.00" in tccam_row and "10.00" in tccam_row and "±" not in tccam_row
    csv = stages_table(iter_runs(runs), "csv")
    assert csv.splitlines()[0].startswith("dataset,method,runs,cam_mean,cam_std")
    assert "no finished distilled runs" in stages_table(iter_runs(tmp_path / "none"))


def test_leaderboard_writes_the_stages_table_to_a_file(tmp_path):
    runs = tmp_path / "runs"
    _fake(runs, 0, 0.30, 0.40, 0.50)
    out = tmp_path / "stages.md"
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "stages", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "| CAM " in out.read_text()


def test_stages_module_imports_no_torch():
    code = "import sys, wsbench.stages; assert 'torch' not in sys.modules, 'torch imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_suite_spec_distill_stage(tmp_path):
    from wsbench.suite import _distill_options, load_spec

    path = tmp_path / "s.toml"
    path.write_text('name = "t"\ntables = ["stages"]\n[distill]\nrecipe = "smoke"\nepochs = 2\n'
                    '[[runs]]\nmethod = "cam"\n[[runs]]\nmethod = "tccam"\ndistill = { enabled = false }\n'
                    '[[runs]]\nmethod = "puzzlecam"\ndistill = { epochs = 3, ignore_band = [0.3, 0.7] }\n')
    spec = load_spec(path)
    assert _distill_options(spec, spec.runs[0]) == {"recipe": "smoke", "epochs": 2}
    assert _distill_options(spec, spec.runs[1]) is None
    assert _distill_options(spec, spec.runs[2]) == {"recipe": "smoke", "epochs": 3, "ignore_band": [0.3, 0.7]}
    path.write_text('[distill]\nepochz = 2\n[[runs]]\nmethod = "cam"\n')
    with pytest.raises(UserError, match="epochz"):
        load_spec(path)
    spec = load_spec(Path(__file__).parent.parent / "benchmarks" / "two-stage.toml")
    assert {r.method for r in spec.runs} == {"cam", "puzzlecam", "tccam"} and spec.seeds == [0, 1, 2]
    assert all(_distill_options(spec, r) is not None for r in spec.runs) and "stages" in spec.tables


def test_distill_help_shows_the_cpu_recipe_defaults():
    """The [recipe: ...] hints of wsbench distill --help are the cpu distill recipe's values."""
    import re

    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.distill import DISTILL_RECIPES

    assert CliRunner().invoke(cli, ["distill", "--help"]).exit_code == 0
    shown = {}
    for param in cli.commands["distill"].params:
        hint = re.search(r"\[recipe: ([^\]]+)\]", getattr(param, "help", None) or "")
        if hint:
            shown[param.opts[0][2:]] = hint.group(1)
    cpu = DISTILL_RECIPES["cpu"]
    expected = {"architecture": cpu.architecture, "encoder": cpu.encoder, "encoder-depth": str(cpu.encoder_depth),
                "decoder-channels": ",".join(map(str, cpu.decoder_channels)), "epochs": str(cpu.epochs),
                "batch-size": str(cpu.batch_size), "lr": str(cpu.lr)}
    assert {k: shown.get(k) for k in expected} == expected
