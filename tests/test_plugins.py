"""Plugins: the example packages installed for real, a broken plugin, sources in listings, fusion API.

The example plugins in ``plugins/`` are built and installed with pip into a temporary folder
(``--no-deps --no-build-isolation --no-index``: nothing is downloaded) and wsbench is run in a
subprocess with that folder on ``PYTHONPATH``, the way a user's environment would see them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import write_video_folder
from wsbench.cli import cli, dataset_options
from wsbench.maps import fuse_maps
from wsbench.methods import Fusion
from wsbench.testing import DatasetContract, MethodContract

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
TINY = ["--recipe", "smoke"]


def _offline_build_problem() -> str | None:
    """Why pip cannot build the plugins here without a download, or ``None`` if it can."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed (pip install -e '.[dev]' brings it) and the build must not download it"
    version = importlib.metadata.version("setuptools")  # not imported here: it patches distutils
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {version} needs the 'wheel' package to build wheels"
    return None


def _pip_install(target: Path, *names: str, workdir: Path) -> None:
    """Install plugins/NAME... into ``target`` from copies (the build leaves no files in the repo)."""
    problem = _offline_build_problem()
    if problem:
        pytest.skip(f"cannot build plugins offline: {problem}")
    sources = []
    for name in names:
        shutil.copytree(PLUGINS / name, workdir / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        sources.append(str(workdir / name))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(target), *sources],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """Both example plugins installed into one temporary folder (like a site-packages)."""
    root = tmp_path_factory.mktemp("plugins")
    _pip_install(root / "site", "wsbench-tcam", "wsbench-frames-csv", workdir=root)
    return root / "site"


def _wsbench(*args: str, site: Path | None = None) -> subprocess.CompletedProcess:
    """``wsbench ARGS`` in a fresh interpreter with ``site`` (plugins) and this checkout importable."""
    env = dict(os.environ)
    env.pop("WSBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (site, REPO, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "wsbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


# -- fusion without warping ----------------------------------------------------------------------
def test_unwarped_causal_max_is_max_over_previous_frames():
    maps = torch.rand(6, 3, 4)
    fused = fuse_maps(maps, None, None, Fusion(2, "max", warp=False, causal=True))
    for t in range(6):
        assert torch.equal(fused[t], maps[max(0, t - 2):t + 1].amax(0))
    mean = fuse_maps(maps, None, None, Fusion(2, "mean", warp=False, causal=True))
    assert torch.allclose(mean[4], maps[2:5].mean(0)) and torch.allclose(mean[0], maps[0])


def test_unwarped_equals_warping_with_zero_flow():
    maps = torch.rand(5, 4, 6)
    zero = torch.zeros(5, 2, 4, 6)
    for causal in (False, True):
        for mode in ("max", "mean"):
            a = fuse_maps(maps, None, None, Fusion(2, mode, warp=False, causal=causal))
            b = fuse_maps(maps, zero, zero, Fusion(2, mode, warp=True, causal=causal))
            assert torch.allclose(a, b), (causal, mode)


# -- a method plugin installed with pip ----------------------------------------------------------
@pytest.mark.slow
def test_installed_method_plugin_runs_and_shows_in_leaderboard(plugin_site, tiny_belt, tmp_path):
    runs = tmp_path / "runs"
    listed = _wsbench("list", "methods", site=plugin_site)
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("tcam "))
    assert "[wsbench-tcam 0.1.0;" in line  # where it comes from: distribution and version
    assert "[built-in;" in next(ln for ln in listed.stdout.splitlines() if ln.startswith("cam "))

    ran = _wsbench("run", "--method", "tcam", "--frames", "3", "--dataset", "video-folder", "--data-root",
                   str(tiny_belt), "--runs-dir", str(runs), "-q", *TINY, site=plugin_site)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (result_path,) = runs.glob("*-tcam-*/result.json")
    result = json.loads(result_path.read_text())
    assert result["method"] == "tcam" and result["metrics"]["iou_illegal"] is not None
    assert result["fusion"] == {"neighbours": 3, "mode": "max", "warp": False, "causal": True}
    assert result["config"]["classifier"]["method"] == "cam"  # shares the plain CAM classifier
    # flow-free maps (warp False above); flow is still estimated for the evaluator's stability metric
    assert result["metrics"]["stability"] is not None
    assert result["config"]["method_options"] == {"frames": 3}

    board = _wsbench("leaderboard", "--runs-dir", str(runs), site=plugin_site)
    assert board.returncode == 0, board.stderr
    assert "tcam" in board.stdout


class TestTcamPluginContract(MethodContract):
    """The installed T-CAM plugin keeps the method contract that every built-in keeps."""

    name = "tcam"
    options = {"frames": 3}

    @pytest.fixture(autouse=True)
    def _installed(self, plugin_site, monkeypatch):
        from wsbench.methods import METHODS

        monkeypatch.syspath_prepend(str(plugin_site))
        METHODS.reset_plugins()
        assert METHODS.entry("tcam").source == "wsbench-tcam 0.1.0"
        yield
        METHODS.reset_plugins()
        sys.modules.pop("wsbench_tcam", None)


# -- a broken plugin -----------------------------------------------------------------------------
def _broken_dist(site: Path) -> None:
    """A distribution whose ``wsbench.methods`` entry point's module raises on import."""
    (site / "wsb_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    info = site / "wsb_broken_plugin-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsb-broken-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[wsbench.methods]\nbroken = wsb_broken_plugin:Broken\n")


def test_broken_plugin_warns_by_name_and_commands_work(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _broken_dist(site)
    listed = _wsbench("list", "methods", site=site)
    assert listed.returncode == 0, listed.stderr
    assert "PluginWarning" in listed.stderr
    assert "method plugin 'broken' from wsb-broken-plugin 0.3 was not loaded: RuntimeError: boom at import" \
        in listed.stderr
    assert "cam " in listed.stdout and "broken" not in listed.stdout

    helped = _wsbench("run", "--help", site=site)
    assert helped.returncode == 0 and "--method" in helped.stdout
    board = _wsbench("leaderboard", "--runs-dir", str(tmp_path / "runs"), site=site)
    assert board.returncode == 0 and "no finished runs" in board.stdout

    asked = _wsbench("run", "--method", "broken", site=site)
    assert asked.returncode == 1
    assert "unknown method 'broken' (its plugin failed to load: RuntimeError: boom at import)" in asked.stderr
    assert "Traceback" not in asked.stderr


# -- the frames-csv data set plugin --------------------------------------------------------------
def _frames_csv(root: Path, split: bool = False) -> Path:
    """The conftest video-folder data flattened: frames/<video>_frame_<n>.png, labels.csv, masks/."""
    src = write_video_folder(root.parent / f"{root.name}-src", videos=3, frames=6)
    rows = ["video,label" + (",split" if split else "")]
    for label in ("before", "after"):
        for v, vdir in enumerate(sorted((src / label).iterdir())):
            vid = f"{label[0]}{vdir.name}"
            rows.append(f"{vid},{label}" + (f",{('train', 'val', 'test')[v]}" if split else ""))
            for n, frame in enumerate(sorted(vdir.iterdir())):
                (root / "frames").mkdir(parents=True, exist_ok=True)
                shutil.copy(frame, root / "frames" / f"{vid}_frame_{n * 10}.png")  # 0, 10, ..., 50: numeric order
                mask = src / "masks" / label / vdir.name / frame.name
                if mask.exists():
                    (root / "masks").mkdir(exist_ok=True)
                    shutil.copy(mask, root / "masks" / f"{vid}_frame_{n * 10}.png")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def frames_csv_plugin(plugin_site, monkeypatch):
    """The installed ``wsbench-frames-csv`` distribution visible to this process's registry."""
    from wsbench.data import DATASETS

    monkeypatch.syspath_prepend(str(plugin_site))
    DATASETS.reset_plugins()
    yield DATASETS
    DATASETS.reset_plugins()
    sys.modules.pop("wsbench_frames_csv", None)


def test_frames_csv_plugin_reads_flat_frames_and_labels(frames_csv_plugin, tmp_path):
    from wsbench.data import create_dataset

    root = _frames_csv(tmp_path / "flat")
    assert frames_csv_plugin.entry("frames-csv").source == "wsbench-frames-csv 0.1.0"
    index = create_dataset("frames-csv", root=root)
    assert sorted(v.key for v in index.videos) == [f"{c}/{c[0]}vid{i}" for c in ("after", "before") for i in range(3)]
    video = next(v for v in index.videos if v.key == "before/bvid1")
    assert list(video.frames.names) == [f"bvid1_frame_{n}" for n in (0, 10, 20, 30, 40, 50)]
    assert video.has_masks and [m.name for m in video.masks][:2] == ["bvid1_frame_0.png", "bvid1_frame_10.png"]
    assert {v.split for v in index.videos} == {"train", "val", "test"}

    fixed = create_dataset("frames-csv", root=_frames_csv(tmp_path / "fixed", split=True))
    assert {v.key: v.split for v in fixed.videos}["after/avid2"] == "test" and fixed.info["splits"] == "labels.csv"


def test_frames_csv_plugin_errors_name_the_problem(frames_csv_plugin, tmp_path):
    from wsbench.data import create_dataset
    from wsbench.errors import UserError

    root = _frames_csv(tmp_path / "flat")
    (root / "frames" / "stray_frame_1.png").write_bytes((root / "frames" / "bvid0_frame_0.png").read_bytes())
    with pytest.raises(UserError, match="stray_frame_1.png: video 'stray' is not in .*labels.csv"):
        create_dataset("frames-csv", root=root)
    (root / "frames" / "stray_frame_1.png").unlink()
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace("avid0,after", "avid0,later"))
    with pytest.raises(UserError, match=r"labels.csv:5: label must be before or after, not 'later'"):
        create_dataset("frames-csv", root=root)
    with pytest.raises(UserError, match="frame_pattern needs the groups"):
        create_dataset("frames-csv", root=root, frame_pattern="(.+)_(\\d+)")


@pytest.mark.slow
def test_frames_csv_plugin_on_the_command_line(plugin_site, tmp_path):
    root = _frames_csv(tmp_path / "flat")
    listed = _wsbench("list", "datasets", site=plugin_site)
    assert "[wsbench-frames-csv 0.1.0; needs-root, recipe: paper]" in listed.stdout, listed.stdout + listed.stderr
    shown = _wsbench("data", "show", str(root), "--dataset", "frames-csv", "--out", str(tmp_path / "sheet.png"),
                     site=plugin_site)
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "sheet.png").is_file()
    runs = tmp_path / "runs"
    ran = _wsbench("run", "--method", "cam", "--dataset", "frames-csv", "--data-root", str(root),
                   "--runs-dir", str(runs), "-q", *TINY, site=plugin_site)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (result_path,) = runs.glob("*/result.json")
    assert json.loads(result_path.read_text())["metrics"]["iou_illegal"] is not None


# -- dataset options -----------------------------------------------------------------------------
def test_dataset_option_values_are_parsed():
    assert dataset_options(("segment_seconds=10", "stride=2", "name=abc", "flag=true", "x=2.5")) == \
        {"segment_seconds": 10, "stride": 2, "name": "abc", "flag": True, "x": 2.5}
    assert dataset_options(("segment-seconds=1",)) == {"segment_seconds": 1}
    import click

    with pytest.raises(click.BadParameter, match="not KEY=VALUE"):
        dataset_options(("novalue",))
    with pytest.raises(click.BadParameter, match="its own option"):
        dataset_options(("split_seed=1",))


def test_suite_passes_dataset_options(tmp_path):
    from wsbench.suite import _specs, load_spec

    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent("""
        datasets = ["video-folder"]
        [[runs]]
        method = "tcam"
        [datasets_options."video-folder"]
        data_root = "/data/rec"
        split_seed = 3
        segment_seconds = 10
    """))
    ((_, run),) = list(_specs(load_spec(spec), [0], {}))
    assert run.data_root == "/data/rec" and run.split_seed == 3 and run.dataset_options == {"segment_seconds": 10}


def test_unknown_dataset_option_is_one_line(video_folder):
    result = CliRunner().invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder", "--data-root",
                                      str(video_folder), "--dataset-option", "nope=1"])
    assert result.exit_code == 1
    assert "data set 'video-folder' takes no option 'nope'" in result.output


def test_plugin_source_shown_by_list(tmp_path, monkeypatch):
    """In-process: a plugin's source is its distribution and version (no pip needed)."""
    from wsbench.methods import METHODS

    site = tmp_path / "site"
    site.mkdir()
    (site / "wsb_listed_plugin.py").write_text(textwrap.dedent("""
        from wsbench.methods import Method, register_method

        @register_method("listed", trains=False, description="a listed plugin")
        class Listed(Method):
            def classifier(self):
                return "cam", {}
    """))
    info = site / "wsb_listed_plugin-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsb-listed-plugin\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text("[wsbench.methods]\nlisted = wsb_listed_plugin:Listed\n")
    monkeypatch.syspath_prepend(str(site))
    METHODS.reset_plugins()
    try:
        result = CliRunner().invoke(cli, ["list", "methods", "l*"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "listed  a listed plugin  [wsb-listed-plugin 2.5]"
    finally:
        METHODS.reset_plugins()
        sys.modules.pop("wsb_listed_plugin", None)


class TestFramesCsvPluginContract(DatasetContract):
    """The installed frames-csv plugin keeps the data set contract that every built-in keeps."""

    name = "frames-csv"
    frame_size = (48, 40)

    @pytest.fixture(autouse=True)
    def _installed(self, frames_csv_plugin):
        assert frames_csv_plugin.entry("frames-csv").source == "wsbench-frames-csv 0.1.0"

    def write_example(self, name, folder):
        return _frames_csv(folder)
