"""The command line: listing, help, errors, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from wsbench import __version__
from wsbench.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_list_methods_and_datasets(runner):
    result = runner.invoke(cli, ["list", "methods"])
    assert result.exit_code == 0
    for name in ("cam", "gradcam", "f2f", "puzzlecam", "tccam"):
        assert name in result.output
    assert "built-in" in result.output
    result = runner.invoke(cli, ["list", "datasets", "zero*"])
    assert result.exit_code == 0 and "zerowaste-w" in result.output and "video-folder" not in result.output
    result = runner.invoke(cli, ["list", "flows"])
    assert "dis" in result.output and "raft" in result.output


def test_run_help_and_method_options(runner):
    result = runner.invoke(cli, ["run", "--help"])
    assert result.exit_code == 0 and "--method" in result.output and "--epochs" in result.output
    assert "--spatial" not in result.output
    result = runner.invoke(cli, ["run", "--method", "tccam", "--help"])
    assert result.exit_code == 0 and "--spatial / --no-spatial" in result.output and "[tccam]" in result.output


def test_unknown_method_is_one_line(runner):
    result = runner.invoke(cli, ["run", "--method", "x"])
    assert result.exit_code != 0
    assert "unknown method 'x'; available: " in result.output and "cam" in result.output
    assert "Traceback" not in result.output


def test_option_of_another_method(runner):
    result = runner.invoke(cli, ["run", "--method", "cam", "--spatial"])
    assert result.exit_code != 0
    assert "option --spatial is not taken by method 'cam'" in result.output


def test_missing_data_root(runner, tmp_path):
    result = runner.invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder",
                                 "--data-root", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "data root not found" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder"])
    assert result.exit_code == 1 and "needs --data-root" in result.output


def test_debug_shows_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["--debug", "run", "--method", "cam", "--dataset", "video-folder",
                                 "--data-root", str(tmp_path / "nope")])
    assert result.exit_code != 0 and result.exception is not None


@pytest.mark.slow
def test_run_end_to_end_writes_record(runner, tiny_run, tmp_path):
    """The session's tiny ``cam`` run (``wsbench run``), copied: gradcam and f2f runs are added beside it."""
    copy = tiny_run.copy(tmp_path)
    runs, run_dir, tiny_belt = copy.runs, copy.run_dir, copy.data
    config = json.loads((run_dir / "config.json").read_text())
    res = json.loads((run_dir / "result.json").read_text())
    assert config["method"] == "cam" and config["recipe"]["epochs"] == 1 and config["seed"] == 0
    assert config["environment"]["packages"]["torch"]
    for key in ("iou_illegal", "miou", "threshold", "oracle_iou_illegal", "accuracy"):
        assert key in res["metrics"]
    assert res["baselines"]["all_foreground"]["iou_illegal"] > 0 and res["baselines"]["empty"]["iou_illegal"] == 0
    assert {"train", "flow", "maps"} <= set(res["timings"])
    # gradcam trains its own standard classifier; f2f explains it: nothing is trained again
    for method, classifiers in (("gradcam", 2), ("f2f", 2)):
        result = runner.invoke(cli, ["run", "--method", method, "--dataset", "video-folder", "--data-root",
                                     str(tiny_belt), "--runs-dir", str(runs), "-q", "--recipe", "smoke"])
        assert result.exit_code == 0, result.output
        assert len(list((runs / "classifiers").glob("*/final.pt"))) == classifiers
    result = runner.invoke(cli, ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "GradCAM" in result.output and "all-foreground" in result.output


def test_data_synth_help_shows_the_belt_defaults():
    from wsbench.data.synthetic import BeltConfig

    text = " ".join(CliRunner().invoke(cli, ["data", "synth", "--help"]).output.split())
    config = BeltConfig()
    assert f"[default: {config.train_videos};" in text and f"[default: {config.frames};" in text
    assert f"[default: {config.size[0]}x{config.size[1]}]" in text


def test_data_show_writes_its_contact_sheet_into_the_current_folder(video_folder, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["data", "show", str(video_folder)])
    assert result.exit_code == 0, result.output
    assert (work / "contact_sheet.png").is_file() and not (video_folder / "contact_sheet.png").exists()


@pytest.mark.parametrize("args", [["list"], ["list", "methods"], ["list", "datasets"], ["list", "flows"],
                                  ["list", "recipes"], ["run", "--method", "tccam", "--help"]])
def test_listing_and_help_do_not_import_torch(args):
    """Listing and help answer without torch, timm or pandas (seconds of imports on a small machine)."""
    import subprocess
    import sys

    code = ("import sys\nfrom wsbench.cli import main\nsys.argv = ['wsbench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('torch', 'timm', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]
