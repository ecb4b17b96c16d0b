"""Shared fixtures: tiny generated data sets in every layout, isolated runs and cache dirs, one finished tiny run.

Tiny runs use the registered ``smoke`` recipe (``--recipe smoke``, ``recipe="smoke"``), never its fields retyped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("WSBENCH_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own runs and cache directories."""
    monkeypatch.setenv("WSBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WSBENCH_CACHE_DIR", str(tmp_path / "cache"))


def _frame(rng: np.random.Generator, size: tuple[int, int], t: int, illegal: bool) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    frame = np.full((h, w, 3), 90, np.uint8)
    frame += rng.integers(0, 8, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x = (5 + 3 * t) % max(1, w - 12)
    cv2.rectangle(frame, (x, 4), (x + 8, 12), (200, 200, 210), -1)  # a legal object
    if illegal:
        cv2.circle(frame, ((x + 20) % max(1, w - 6) + 3, h // 2 + 4), 4, (230, 60, 40), -1)
        cv2.circle(mask, ((x + 20) % max(1, w - 6) + 3, h // 2 + 4), 4, 255, -1)
    return frame, mask


def write_video_folder(root: Path, videos: int = 3, frames: int = 5, size: tuple[int, int] = (48, 40),
                       ext: str = ".png", name=lambda t: f"frame_{t:04d}", masks: bool = True,
                       splits: dict | None = None, seed: int = 0) -> Path:
    """A small video-folder data set: ``videos`` per class, before frames with GT masks."""
    rng = np.random.default_rng(seed)
    for label in ("before", "after"):
        for v in range(videos):
            vdir = root / label / f"vid{v}"
            vdir.mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                frame, mask = _frame(rng, size, t, illegal=label == "before")
                cv2.imwrite(str(vdir / f"{name(t)}{ext}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if masks and label == "before":
                    mdir = root / "masks" / label / f"vid{v}"
                    mdir.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(mdir / f"{name(t)}.png"), mask)
    if splits is not None:
        (root / "splits.json").write_text(json.dumps(splits))
    return root


def write_mp4_folder(root: Path, frames: int, fps: float = 10.0) -> Path:
    """The video-folder data of :func:`write_video_folder`, each video encoded as one MP4 file
    (``cv2.VideoWriter``), masks renamed to the file's frame numbers; skips where OpenCV cannot."""
    src = write_video_folder(root.parent / f"{root.name}-frames", videos=3, frames=frames)
    for label in ("before", "after"):
        (root / label).mkdir(parents=True)
        for vdir in sorted((src / label).iterdir()):
            images = sorted(vdir.iterdir())
            h, w = cv2.imread(str(images[0])).shape[:2]
            writer = cv2.VideoWriter(str(root / label / f"{vdir.name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                     (w, h))
            if not writer.isOpened():
                pytest.skip("this OpenCV build cannot encode MP4 (mp4v codec unavailable)")
            for image in images:
                writer.write(cv2.imread(str(image)))
            writer.release()
            masks = src / "masks" / label / vdir.name
            if masks.is_dir():
                out = root / "masks" / label / vdir.name
                out.mkdir(parents=True)
                for n, mask in enumerate(sorted(masks.iterdir())):
                    shutil.copy(mask, out / f"{vdir.name}_{n:06d}.png")
    if cv2.VideoCapture(str(root / "before" / "vid0.mp4")).read()[0] is False:
        pytest.skip("this OpenCV build cannot decode the MP4 it wrote (no FFmpeg backend)")
    return root


#: ``[[runs]]`` tables of a suite: plain CAM (labelled) and GradCAM, the start of most test suites
CAM_AND_GRADCAM = """
[[runs]]
method = "cam"
label = "Plain CAM"

[[runs]]
method = "gradcam"
"""


def smoke_suite(data_root: Path, runs: str = "", name: str = "tiny", epochs: int = 1) -> str:
    """A suite spec (TOML): seed 0 on the video-folder data at ``data_root`` with the smoke recipe.

    Args:
        data_root: the data set.
        runs: its ``[[runs]]`` tables (TOML; empty: none yet).
        name: the suite's name.
        epochs: training epochs (over the smoke recipe's).

    Returns:
        The spec's text, with the comparison and background tables.
    """
    return f"""
name = "{name}"
datasets = ["video-folder"]
seeds = [0]
tables = ["comparison", "background"]

[recipe]
name = "smoke"
epochs = {epochs}

[datasets_options."video-folder"]
data_root = "{data_root}"
""" + runs


@pytest.fixture
def video_folder(tmp_path) -> Path:
    """3 before + 3 after videos of 5 PNG frames (48×40) with masks, no splits.json."""
    return write_video_folder(tmp_path / "vf")


@pytest.fixture(scope="session")
def tiny_belt(tmp_path_factory) -> Path:
    """A tiny synthetic belt (video-folder layout with splits.json), generated once per session."""
    from wsbench.data.synthetic import BeltConfig, generate_belt

    config = BeltConfig(train_videos=3, val_videos=2, test_videos=2, frames=8, size=(64, 64), seed=1)
    return generate_belt(tmp_path_factory.mktemp("belt") / "belt", config)


@dataclasses.dataclass(frozen=True)
class TinyRun:
    """A finished run of :func:`tiny_run` and where it lives.

    Attributes:
        data: the data root it was trained and scored on.
        runs: its runs folder (the run and its classifier under ``classifiers/``).
        cache: its cache folder.
        run_dir: the run's folder.
        output: what ``wsbench run`` printed.
    """

    data: Path
    runs: Path
    cache: Path
    run_dir: Path
    output: str

    def copy(self, folder: Path) -> TinyRun:
        """The runs and cache folders copied into ``folder``, for a test that adds runs or changes files.

        Args:
            folder: an empty or new folder.

        Returns:
            The same run in the copy (the data root is shared: it is only read).
        """
        runs, cache = folder / "runs", folder / "cache"
        shutil.copytree(self.runs, runs)
        shutil.copytree(self.cache, cache)
        return dataclasses.replace(self, runs=runs, cache=cache, run_dir=runs / self.run_dir.name)


@pytest.fixture(scope="session")
def tiny_run(tiny_belt, tmp_path_factory) -> TinyRun:
    """A finished ``cam`` run on :func:`tiny_belt` with ``--recipe smoke``, trained once per session.

    Shared by every test that asks for it, so a test only reads it; one that adds runs to its runs
    folder or changes its files works on ``tiny_run.copy(tmp_path)``.
    """
    from click.testing import CliRunner

    from wsbench.cli import cli

    base = tmp_path_factory.mktemp("tiny-run")
    runs, cache = base / "runs", base / "cache"
    result = CliRunner().invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder", "--data-root",
                                      str(tiny_belt), "--runs-dir", str(runs), "--cache-dir", str(cache), "-q",
                                      "--recipe", "smoke"])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in runs.iterdir() if p.name != "classifiers"]
    return TinyRun(tiny_belt, runs, cache, run_dir, result.output)
