"""Reliability: bad input, diverging training, interrupted runs, determinism, concurrent runs, loader fuzzing.

``test_bad_input_table`` feeds every bad input through the CLI and checks what the user sees; it
also renders ``docs/bad-input.md``. Run it with ``WSBENCH_WRITE_DOCS=1`` to rewrite that file;
otherwise the test fails when the committed file differs from what it would write.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.data.io import read_image, read_mask
from wsbench.errors import UserError
from wsbench.files import atomic_write_json
from wsbench.registry import RegistryError
from wsbench.runs import iter_runs

from .conftest import write_video_folder

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "bad-input.md"
TINY = ["--recipe", "smoke"]
RUN_ID = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{6}")


# -- the bad-input table ----------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One bad input: how to make it, the command, and what the user must see.

    ``make(data)`` builds the input under the folder ``data`` and returns the CLI arguments
    (``tiny`` adds the tiny training recipe, not shown in the table). ``ok`` cases finish with
    warnings; the others exit non-zero with exactly one line naming ``expect``.
    """

    input: str
    make: Callable[[Path], list[str]]
    expect: str
    ok: bool = False
    tiny: bool = True
    usage: bool = False  # a click usage error: --debug shows click's usage block, not a traceback
    recipe: tuple[str, ...] = ()  # options after the tiny recipe (shown in the table)
    patch: Callable[[pytest.MonkeyPatch], None] | None = None  # applied while the command runs
    after_divergence: bool = False  # run the command once with a NaN loss first
    summary: bool = False  # an ok case: show the run's summary line (otherwise only that it finished)
    run_options: bool = True  # a command with --runs-dir and -q (not data synth, leaderboard)
    damage: Callable[[Path], None] | None = None  # run the command once (it must succeed), then damage(work)


def _vf(args: list[str] | None = None, method: str = "cam") -> Callable[[Path], list[str]]:
    return lambda data: ["run", "-m", method, "-d", "video-folder", "--data-root", str(data), *(args or [])]


def _with(build: Callable[[Path], None], method: str = "cam", args: list[str] | None = None,
          ) -> Callable[[Path], list[str]]:
    def make(data: Path) -> list[str]:
        build(data)
        return _vf(args, method)(data)
    return make


def _corrupt_frame(data: Path) -> None:
    write_video_folder(data)
    (data / "before" / "vid1" / "frame_0002.png").write_bytes(np.random.default_rng(0).bytes(500))


def _truncated_png(data: Path) -> None:
    write_video_folder(data)
    path = data / "after" / "vid0" / "frame_0003.png"
    path.write_bytes(path.read_bytes()[:-200])


def _truncated_jpeg(data: Path) -> None:
    write_video_folder(data, ext=".jpg")
    path = data / "before" / "vid2" / "frame_0001.jpg"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _empty_frame(data: Path) -> None:
    write_video_folder(data)
    (data / "before" / "vid0" / "frame_0004.png").write_bytes(b"")


def _text_as_png(data: Path) -> None:
    write_video_folder(data)
    (data / "after" / "vid1" / "frame_0000.png").write_text("not an image\n")


def _mixed_sizes(data: Path) -> None:
    write_video_folder(data)
    cv2.imwrite(str(data / "after" / "vid2" / "frame_0002.png"), np.zeros((20, 20, 3), np.uint8))


def _mask_size(data: Path) -> None:
    write_video_folder(data, splits={"train": ["vid0"], "val": ["vid1"], "test": ["vid2"]})
    cv2.imwrite(str(data / "masks" / "before" / "vid2" / "frame_0001.png"), np.zeros((20, 24), np.uint8))


def _orphan_mask(data: Path) -> None:
    write_video_folder(data)
    cv2.imwrite(str(data / "masks" / "before" / "vid0" / "frame_0099.png"), np.zeros((40, 48), np.uint8))


def _mask_of_unknown_video(data: Path) -> None:
    write_video_folder(data)
    (data / "masks" / "before" / "vid7").mkdir(parents=True)
    cv2.imwrite(str(data / "masks" / "before" / "vid7" / "frame_0000.png"), np.zeros((40, 48), np.uint8))


def _duplicate_stem(data: Path) -> None:
    write_video_folder(data)
    shutil.copy(data / "before" / "vid0" / "frame_0001.png", data / "before" / "vid0" / "frame_0001.jpg")


def _bad_splits(data: Path) -> None:
    write_video_folder(data)
    (data / "splits.json").write_text('{"train": ["vid0", "vid9"]}')


def _short_video(data: Path) -> None:
    write_video_folder(data, splits={"train": ["vid0", "before/short"], "val": ["vid1"], "test": ["vid2"]})
    (data / "before" / "short").mkdir()
    for t in range(2):
        shutil.copy(data / "before" / "vid0" / f"frame_{t:04d}.png", data / "before" / "short" / f"frame_{t:04d}.png")


def _short_videos_only(data: Path) -> None:
    write_video_folder(data, frames=2)


def _non_image_files(data: Path) -> None:
    write_video_folder(data)
    (data / "before" / "vid0" / "notes.txt").write_text("belt stopped at 10:42\n")
    (data / "after" / "vid1" / "Thumbs.db").write_bytes(b"\x00" * 16)


def _no_masks(data: Path) -> None:
    write_video_folder(data, masks=False)


def _pretrained(content: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def make(data: Path) -> list[str]:
        write_video_folder(data)
        content(data.parent / "weights.pt")
        return _vf(["--pretrained", str(data.parent / "weights.pt")])(data)
    return make


def _nan_from_epoch_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make cam's loss NaN from the second epoch on."""
    from wsbench.methods import LossTerm, create_method

    cls = type(create_method("cam"))
    original = cls.training_losses

    def nan_from_epoch_2(self, model, batch, progress):
        terms = original(self, model, batch, progress)
        if progress.epoch >= 1:
            terms["cls"] = LossTerm(terms["cls"].value * float("nan"), terms["cls"].weight)
        return terms

    monkeypatch.setattr(cls, "training_losses", nan_from_epoch_2)


def _pixel_bomb(data: Path) -> None:
    """A 16000x16000 PNG header on a tiny file (decoding it would take gigabytes)."""
    write_video_folder(data)
    path = data / "before" / "vid1" / "frame_0002.png"
    raw = bytearray(path.read_bytes())
    raw[16:24] = (16000).to_bytes(4, "big") * 2
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(raw))


def _a_file_as(name: str, option: str | None = None) -> Callable[[Path], list[str]]:
    """A data set, and a file ``TMP/<name>`` where a folder is expected (given as ``option`` if set)."""
    def make(data: Path) -> list[str]:
        write_video_folder(data)
        (data.parent / name).write_text("not a folder\n")
        return _vf([option, str(data.parent / name)] if option else [])(data)
    return make


class _Payload:
    """Unpickling it would run code (here a harmless print; the row fails if it shows up)."""

    def __reduce__(self):
        return (print, ("payload ran",))


def _disk_error(code: int, when: str) -> Callable[[pytest.MonkeyPatch], None]:
    """Writes of files whose name contains ``when`` fail with ``OSError(code)`` (full or read-only disk)."""
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        real = os.fsync

        def fsync(fd: int) -> None:
            if when in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(code, os.strerror(code))
            real(fd)
        monkeypatch.setattr(os, "fsync", fsync)
    return patch


def _empty_label(label: str) -> Callable[[Path], list[str]]:
    def make(data: Path) -> list[str]:
        write_video_folder(data)
        shutil.rmtree(data / label)
        (data / label).mkdir()
        return _vf()(data)
    return make


def _ambiguous_names(data: Path) -> None:
    write_video_folder(data)
    shutil.copy(data / "after" / "vid2" / "frame_0003.png", data / "after" / "vid2" / "frame_3.png")


def _single_frame_video(data: Path) -> None:
    write_video_folder(data, splits={"train": ["vid0", "before/single"], "val": ["vid1"], "test": ["vid2"]})
    (data / "before" / "single").mkdir()
    shutil.copy(data / "before" / "vid0" / "frame_0000.png", data / "before" / "single" / "frame_0000.png")


def _splits_text(text: str) -> Callable[[Path], None]:
    def build(data: Path) -> None:
        write_video_folder(data)
        (data / "splits.json").write_text(text)
    return build


def _spec(text: str | bytes) -> Callable[[Path], list[str]]:
    """A suite spec (TOML) next to the data; ``suite`` runs it on a video folder."""
    def make(data: Path) -> list[str]:
        write_video_folder(data)
        spec = data.parent / "spec.toml"
        spec.write_bytes(text.replace("DATA", str(data)).encode("utf-8") if isinstance(text, str) else text)
        return ["suite", str(spec)]
    return make


_SPEC_TAIL = '[datasets_options."video-folder"]\ndata_root = "DATA"\n[[runs]]\nmethod = "cam"\n'


def _in_cache(name: str, content: str) -> Callable[[Path], None]:
    """Overwrite ``name`` in the newest frame cache (the one the first run just built)."""
    def damage(work: Path) -> None:
        newest = max(Path(os.environ["WSBENCH_CACHE_DIR"]).glob("*/*/meta.json"), key=lambda p: p.stat().st_mtime_ns)
        (newest.parent / name).write_text(content)
    return damage


def _in_classifier(name: str, content: bytes) -> Callable[[Path], None]:
    def damage(work: Path) -> None:
        (folder,) = (work / "runs" / "classifiers").glob("*/")
        (folder / name).write_bytes(content)
    return damage


def _records(runs: Path, *metrics: object) -> None:
    """Finished runs r1, r2, ... of ``cam`` on a data set ``belt`` with these ``metrics`` (made-up numbers)."""
    for i, values in enumerate(metrics, 1):
        atomic_write_json(runs / f"r{i}" / "config.json", {"method": "cam", "dataset": "belt", "seed": i, "recipe": {}})
        (runs / f"r{i}" / "result.json").write_text(json.dumps(  # NaN and Infinity: what a foreign tool may write
            {"method": "cam", "dataset": "belt", "seed": i, "metrics": values, "config": {}}))


def _bad_record(data: Path) -> list[str]:
    """Two finished runs, one of whose result.json has metrics of the wrong type."""
    _records(data.parent / "runs", {"iou_illegal": 0.4321, "threshold": 0.5}, [0.9])
    return ["leaderboard", "--runs-dir", str(data.parent / "runs")]


def _bad_metric(value: float) -> Callable[[Path], list[str]]:
    """A good run and one whose illegal IoU is ``value``; the leaderboard with intervals."""
    def make(data: Path) -> list[str]:
        _records(data.parent / "runs", {"iou_illegal": 0.4321, "threshold": 0.5}, {"iou_illegal": value,
                                                                                      "threshold": 0.5})
        return ["leaderboard", "--ci", "--runs-dir", str(data.parent / "runs")]
    return make


def _foreign_folder(data: Path) -> list[str]:
    """A good run and a foreign folder whose config.json has two keys and whose result.json looks like a result."""
    runs = data.parent / "runs"
    _records(runs, {"iou_illegal": 0.4321, "threshold": 0.5})
    atomic_write_json(runs / "notes" / "config.json", {"method": "mine", "dataset": "belt"})
    atomic_write_json(runs / "notes" / "result.json", {"method": "mine", "dataset": "belt", "seed": 0,
                                                       "metrics": {"iou_illegal": 0.99, "threshold": 0.5}})
    return ["leaderboard", "--runs-dir", str(runs)]


_PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def _wrong_size_flo(data: Path) -> list[str]:
    """Every frame's .flo file 1x1 (frames are 48x40), passed as --flow files."""
    from wsbench.data import create_dataset
    from wsbench.flow import flo_path, write_flo

    write_video_folder(data)
    index = create_dataset("video-folder", root=data)
    for video in index.videos:
        for n in range(len(video) - 1):
            path = flo_path(data.parent / "flo", index, video, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.zeros((1, 1, 2), np.float32))
    return _vf(["--flow", "files", "--flow-root", str(data.parent / "flo")], "tccam")(data)


def _tiff_bomb(data: Path) -> None:
    """TIFF frames, one of whose headers declares 16000x16000 pixels."""
    write_video_folder(data, ext=".tif")
    path = data / "before" / "vid1" / "frame_0002.tif"
    raw = bytearray(path.read_bytes())
    little = raw[:2] == b"II"
    num = lambda i, n: int.from_bytes(raw[i:i + n], "little" if little else "big")  # noqa: E731
    ifd = num(4, 4)
    for k in range(num(ifd, 2)):
        entry = ifd + 2 + 12 * k
        if num(entry, 2) in (256, 257):  # ImageWidth, ImageLength
            width = 2 if num(entry + 2, 2) == 3 else 4
            raw[entry + 8:entry + 8 + width] = (16000).to_bytes(width, "little" if little else "big")
    path.write_bytes(bytes(raw))


def _ppm_as_png(data: Path) -> None:
    write_video_folder(data)
    ok, buf = cv2.imencode(".ppm", np.zeros((40, 48, 3), np.uint8))
    (data / "after" / "vid2" / "frame_0001.png").write_bytes(buf.tobytes())


def _inside_data(option: str, where: str) -> Callable[[Path], list[str]]:
    def make(data: Path) -> list[str]:
        write_video_folder(data)
        return _vf([option, str(data / where), *(["-q"] if option == "--runs-dir" else [])])(data)
    return make


def _null_threshold(data: Path) -> list[str]:
    _records(data.parent / "runs", {"iou_illegal": 0.4321, "threshold": None})
    return ["export", "--run", str(data.parent / "runs" / "r1"), "--out", str(data.parent / "out")]


def _distilled_without_distill(data: Path) -> list[str]:
    write_video_folder(data)
    run = data.parent / "runs" / "r1"
    config = {"method": "cam-distill", "dataset": "belt", "seed": 0, "distill": {"source_run": "r0",
                                                                                  "source_method": "cam"},
              "recipe": {"architecture": "Unet", "encoder": "tu-resnet10t", "image_size": [32, 32]}}
    atomic_write_json(run / "config.json", config)
    atomic_write_json(run / "result.json", {"method": "cam-distill", "dataset": "belt", "seed": 0,
                                            "metrics": {"iou_illegal": 0.5, "threshold": 0.5}, "config": config})
    return ["segment", "--run", str(run), str(data / "before" / "vid0"), "--out", str(data.parent / "seg")]


def _reopened(change: Callable[[Path], None], command: Callable[[Path, Path], list[str]]
              ) -> Callable[[Path], list[str]]:
    """Train a tiny run on a video folder, ``change`` the data, then reopen the run with ``command(data, run)``."""
    def make(data: Path) -> list[str]:
        write_video_folder(data, splits={"train": ["vid0"], "val": ["vid1"], "test": ["vid2"]})
        runs = data.parent / "runs"
        trained = _invoke(CliRunner(), [*_vf()(data), "--runs-dir", str(runs), "-q", *TINY])
        assert trained.exit_code == 0, trained.output
        (run,) = [p for p in runs.iterdir() if (p / "result.json").is_file()]
        change(data)
        return command(data, run)
    return make


def _swap_train_test(data: Path) -> None:
    (data / "splits.json").write_text(json.dumps({"train": ["vid2"], "val": ["vid1"], "test": ["vid0"]}))


def _edit_mask(data: Path) -> None:
    os.utime(data / "masks" / "before" / "vid1" / "frame_0002.png", ns=(7, 7))


CASES = [
    Case("data root missing", lambda d: _vf()(d / "nope"), "data root not found"),
    Case("data root without after/", lambda d: (write_video_folder(d), shutil.rmtree(d / "after"), _vf()(d))[-1],
         "after: missing"),
    Case("empty before/", _empty_label("before"), "before: no videos"),
    Case("empty after/", _empty_label("after"), "after: no videos"),
    Case("corrupt frame (random bytes named .png)", _with(_corrupt_frame), "frame_0002.png: not a readable image"),
    Case("truncated PNG frame", _with(_truncated_png), "frame_0003.png: not a readable image (truncated PNG"),
    Case("truncated JPEG frame", _with(_truncated_jpeg), "frame_0001.jpg: not a readable image"),
    Case("zero-byte frame", _with(_empty_frame), "frame_0004.png: empty file"),
    Case("text file named .png", _with(_text_as_png), "frame_0000.png: not a readable image"),
    Case("frames of different sizes in one video", _with(_mixed_sizes), "frames of one video must share a size"),
    Case("two frames with the same name", _with(_duplicate_stem), "two frames share the name 'frame_0001'"),
    Case("non-image files in video folders", _with(_non_image_files), "skipped 1 non-image file(s)", ok=True),
    Case("mask whose size differs from its frame", _with(_mask_size), "mask is 24x20 but its frame is 48x40"),
    Case("mask with no matching frame", _with(_orphan_mask), "mask has no matching frame"),
    Case("masks of a video that does not exist", _with(_mask_of_unknown_video), "masks of no video"),
    Case("splits.json names an unknown video", _with(_bad_splits), "lists video 'vid9', which is not in the data set"),
    Case("one video shorter than a temporal clip (others usable)", _with(_short_video, "tccam"),
         "shorter than 4 frames skipped", ok=True),
    Case("every video shorter than a temporal clip", _with(_short_videos_only, "tccam"),
         "no train video has the 4 consecutive frames"),
    Case("GT-less data set", _with(_no_masks), "no GT masks in the test split, so no IoU", ok=True, summary=True),
    Case("training loss becomes NaN (forced in epoch 2 of 2)", _with(write_video_folder), "loss became nan at epoch 2",
         recipe=("--epochs", "2"), patch=_nan_from_epoch_2),
    Case("the same command after a diverged or interrupted training", _with(write_video_folder),
         "pass --resume to continue it", recipe=("--epochs", "2"), after_divergence=True),
    Case("unknown method", lambda d: ["run", "-m", "camm"], "unknown method 'camm'", tiny=False),
    Case("unknown dataset", lambda d: ["run", "-m", "cam", "-d", "belt"], "unknown dataset 'belt'", tiny=False),
    Case("unknown flow", _with(write_video_folder, "tccam", ["--flow", "farneback2"]), "unknown flow 'farneback2'"),
    Case("unknown backbone", _with(write_video_folder), "unknown backbone 'resnet5O'",
         recipe=("--backbone", "resnet5O")),
    Case("backbone without an output stride option (a ViT)", _with(write_video_folder),
         "backbone 'vit_tiny_patch16_224' does not support output_stride",
         recipe=("--backbone", "vit_tiny_patch16_224")),
    Case("option a method does not take", lambda d: ["run", "-m", "cam", "--spatial"],
         "option --spatial is not taken by method 'cam'", tiny=False, usage=True),
    Case("bad value of a method option", lambda d: ["run", "-m", "tccam", "--clip-len", "2"],
         "--clip-len must be at least 3", tiny=False),
    Case("malformed --image-size", lambda d: ["run", "-m", "cam", "--image-size", "big"],
         "'big' is not N or WxH", tiny=False, usage=True),
    Case("--epochs 0", _with(write_video_folder, args=["--epochs", "0"]), "--epochs must be at least 1", tiny=False),
    Case("--pretrained file missing", _pretrained(lambda p: None), "weights.pt: file not found"),
    Case("--pretrained not a weights file", _pretrained(lambda p: p.write_bytes(b"PK\x03\x04 not torch")),
         "not a PyTorch weights file"),
    Case("--pretrained of another architecture",
         _pretrained(lambda p: torch.save(torch.nn.Linear(4, 2).state_dict(), p)),
         "weights do not fit backbone 'wsbench_resnet_tiny'"),
    Case("--pretrained file with a pickled payload", _pretrained(lambda p: torch.save({"x": _Payload()}, p)),
         "refused to load: it holds a Python object (print)"),
    Case("PNG frame whose header declares 16000x16000 pixels", _with(_pixel_bomb),
         "declares 16000x16000 pixels (256 megapixels), above the limit of 64 megapixels"),
    Case("--image-size far too large", _with(write_video_folder), "--image-size must be 16 to 4096 pixels a side",
         recipe=("--image-size", "100000")),
    Case("the runs directory (RUNS) is a file", _a_file_as("runs"), "runs: is a file, not a folder"),
    Case("--cache-dir is a file", _a_file_as("cache", "--cache-dir"), "cache: is a file, not a folder"),
    Case("disk full while saving a checkpoint", _with(write_video_folder), "no space left on the device",
         patch=_disk_error(errno.ENOSPC, ".checkpoint.pt.")),
    Case("read-only runs directory", _with(write_video_folder), "read-only file system",
         patch=_disk_error(errno.EROFS, ".config.json.")),
    # degenerate data: a run would finish with meaningless numbers
    Case("frame names that differ only in leading zeros (frame_0003, frame_3)", _with(_ambiguous_names),
         "differ only in leading zeros or case"),
    Case("one video of a single frame among longer ones", _with(_single_frame_video),
         "1 video(s) of a single frame, e.g. before/single", ok=True),
    Case("videos of one frame (background removal finds nothing)", _with(lambda d: write_video_folder(d, frames=1)),
         "every video has a single frame"),
    Case("a train split with one class", _with(_splits_text(
        '{"train": ["before/vid0", "before/vid1"], "val": ["vid2"], "test": ["after/vid0", "after/vid1"]}')),
         "the train split has no after videos"),
    Case("splits.json with a key given twice", _with(_splits_text('{"train": ["vid0"], "train": ["vid1"]}')),
         "duplicate key 'train'"),
    Case("splits.json nested 100,000 deep", _with(_splits_text('{"train": ' + "[" * 100_000 + "]" * 100_000 + "}")),
         "splits JSON is nested too deeply"),
    Case("data synth --videos 0", lambda d: ["data", "synth", "--out", str(d), "--videos", "0"],
         "'--videos': 0 is not in the range x>=1", tiny=False, usage=True, run_options=False),
    # options out of range
    Case("--bg-threshold nan", _with(write_video_folder), "--bg-threshold must be a number of grey levels",
         recipe=("--bg-threshold", "nan")),
    Case("--weight-decay nan", _with(write_video_folder), "--weight-decay must be a number >= 0",
         recipe=("--weight-decay", "nan")),
    Case("--seed beyond 64 bits", lambda d: ["run", "-m", "cam", "--seed", str(2**64)],
         "'--seed': 18446744073709551616 is not in the range", tiny=False, usage=True),
    Case("--workers -1", lambda d: ["run", "-m", "cam", "--workers", "-1"], "'--workers': -1 is not in the range x>=0",
         tiny=False, usage=True),
    Case("--fuse-neighbours -3", lambda d: ["run", "-m", "cam", "--fuse-neighbours", "-3"],
         "'--fuse-neighbours': -3 is not in the range x>=0", tiny=False, usage=True),
    Case("--cam-scales nan", _with(write_video_folder, args=["--cam-scales", "nan"]),
         "--cam-scales must be finite positive numbers"),
    Case("--cam-scales inf", _with(write_video_folder, args=["--cam-scales", "0.5,inf"]),
         "--cam-scales must be finite positive numbers"),
    Case("--cam-scales 1,,2", _with(write_video_folder, args=["--cam-scales", "1,,2"]), "has an empty item"),
    # suite specs of the wrong shape
    Case("suite spec: seeds = \"a\"", _spec('seeds = "a"\n' + _SPEC_TAIL), "seeds: expected a non-empty list",
         tiny=False),
    Case("suite spec: datasets = \"video-folder\" (a string, not a list)",
         _spec('datasets = "video-folder"\n' + _SPEC_TAIL),
         "datasets: expected a non-empty list, each item a string, got a string", tiny=False),
    Case("suite spec: options = \"x\"", _spec(_SPEC_TAIL + 'options = "x"\n'), "runs[0].options: expected a table",
         tiny=False),
    Case("suite spec: options = { spatial = \"yes\" } (a string for a flag)",
         _spec(_SPEC_TAIL.replace('"cam"', '"tccam"') + 'options = { spatial = "yes" }\n'),
         "runs[0].options.spatial: expected true or false, got a string", tiny=False),
    Case("suite spec: lr = \"fast\"", _spec('[recipe]\nlr = "fast"\n' + _SPEC_TAIL), "recipe.lr: expected a number",
         tiny=False),
    Case("suite spec: image_size = 32", _spec('[recipe]\nimage_size = 32\n' + _SPEC_TAIL),
         "recipe.image_size: expected a list of 2 items", tiny=False),
    Case("suite spec that is not UTF-8", _spec('name = "Gr\u00fcn"\n'.encode("latin-1")), "is not UTF-8 text",
         tiny=False),
    # damaged files of a finished run, its classifier and the caches
    Case("a result.json whose fields have wrong types", _bad_record, "metrics: expected a table/object, got a list",
         ok=True, tiny=False, run_options=False, summary=True),
    Case("corrupt cached accuracy.json", _with(write_video_folder), "accuracy.json: not valid cached accuracy JSON",
         damage=_in_classifier("accuracy.json", b'{"original": ')),
    Case("train.json of the wrong types", _with(write_video_folder),
         "train.json: train_seconds: expected a finite number",
         damage=_in_classifier("train.json", b'{"train_seconds": "1"}')),
    Case("corrupt final.pt", _with(write_video_folder), "final.pt: not a PyTorch weights file",
         damage=_in_classifier("final.pt", b"PK\x03\x04 not torch")),
    Case("cache meta.json of the wrong shape", _with(write_video_folder),
         "meta.json: videos: expected a list", damage=_in_cache("meta.json", '{"videos": 3}')),
    # weights files, flow files, formats, outputs inside the data
    Case("--pretrained /etc/passwd (a text file)", _pretrained(lambda p: p.write_bytes(_PASSWD)),
         "weights.pt: not a PyTorch weights file"),
    Case("--pretrained holding a list, not a state dict", _pretrained(lambda p: torch.save([1, 2], p)),
         "weights.pt: not a state dict (expected a mapping of parameter names to tensors, got a list)"),
    Case("a text file as the classifier's final.pt", _with(write_video_folder), "final.pt: not a PyTorch weights file",
         damage=_in_classifier("final.pt", _PASSWD)),
    Case(".flo files of 1x1 for 48x40 frames", _wrong_size_flo, "is 1x1 but its frame is 48x40"),
    Case("TIFF frame whose header declares 16000x16000 pixels", _with(_tiff_bomb),
         "frame_0002.tif: declares 16000x16000 pixels (256 megapixels)"),
    Case("a PPM image named .png", _with(_ppm_as_png), "frame_0001.png: not a readable image (unsupported format"),
    Case("--runs-dir inside the data root", _inside_data("--runs-dir", "masks/before"),
         "is inside the data root", run_options=False),
    Case("--cache-dir inside the data root", _inside_data("--cache-dir", "before/vid0"),
         "is inside the data root"),
    # records: complete and finite, or skipped; a reopened run proves its data (issue 25)
    Case("a result.json with a NaN illegal IoU", _bad_metric(float("nan")),
         "metrics.iou_illegal: expected a number in 0..1, got a number (nan)", ok=True, tiny=False, run_options=False,
         summary=True),
    Case("a result.json with an illegal IoU of 1e308", _bad_metric(1e308),
         "metrics.iou_illegal: expected a number in 0..1, got a number (1e+308)", ok=True, tiny=False,
         run_options=False, summary=True),
    Case("a foreign folder in the runs directory with a two-key config.json", _foreign_folder,
         "config.json: missing key 'seed'", ok=True, tiny=False, run_options=False, summary=True),
    Case("a result.json with a null threshold", _null_threshold,
         "result.json: metrics.threshold: expected a number in 0..1, got null", tiny=False, run_options=False),
    Case("a distilled run's result.json without distill", _distilled_without_distill,
         "result.json: missing key 'distill'", tiny=False, run_options=False),
    Case("splits.json with train and test swapped after the run", _reopened(
        _swap_train_test, lambda data, run: ["distill", "--run", str(run), "--recipe", "smoke"]),
         "the data changed since the run was made: which split each video is in", tiny=False),
    Case("a GT mask edited after the run", _reopened(
        _edit_mask, lambda data, run: ["export", "--run", str(run), "--out", str(data.parent / "out")]),
         "the data changed since the run was made: its GT masks", tiny=False),
    Case("--cam-scales 1e9", _with(write_video_folder, args=["--cam-scales", "1e9"]),
         "--cam-scales 1e9: each scale must be at most 8"),
    Case("suite spec: [evaluation] cam_scales = [1e9]", _spec('[evaluation]\ncam_scales = [1e9]\n' + _SPEC_TAIL),
         "evaluation.cam_scales[0]: expected a number in 1e-06..8", tiny=False),
    Case("suite spec: [distill] image_size = [32, 32, 7]",
         _spec('[distill]\nimage_size = [32, 32, 7]\n' + _SPEC_TAIL),
         "distill.image_size: expected a list of 2 items", tiny=False),
]


def _normalise(text: str, work: Path) -> str:
    """Temporary paths and run ids as placeholders, and no scores (the table is about messages)."""
    text = text.replace(str(work / "data"), "DATA").replace(str(work / "runs"), "RUNS").replace(str(work), "TMP")
    text = re.sub(r"\S*/cache/([\w-]+)-[0-9a-f]{16}/", r"CACHE/\1-<hash>/", text)
    text = re.sub(r"classifiers/[0-9a-f]{12}", "classifiers/<hash>", RUN_ID.sub("<run-id>", text))
    text = re.sub(r"\b[0-9a-f]{16}\b", "<fingerprint>", text)  # data fingerprints hash temporary paths and times
    return re.sub(r"\d+\.\d{2,}", "…", text)


def _invoke(runner: CliRunner, args: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return runner.invoke(cli, args, prog_name="wsbench")


def _render(rows: list[tuple[str, str, int, str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    lines = [
        "# Bad input: what the user sees",
        "",
        "Generated by `tests/test_reliability.py::test_bad_input_table`, which runs every row through the",
        "CLI; `WSBENCH_WRITE_DOCS=1 pytest tests/test_reliability.py -k table` rewrites this file, and the",
        "test fails when it is stale. Each input is a small generated video-folder data set under `DATA`",
        "(`TMP` is its parent, `RUNS` the runs directory, `CACHE` the cache directory); training commands",
        "also get a tiny recipe",
        f"(`{' '.join(TINY)} -q`), not shown, and scores are shown as `…`.",
        "",
        "Errors are exactly one line on stderr and exit with status ≠ 0 (1, or 2 for command-line usage",
        "errors); `wsbench --debug ...` shows the traceback instead. Warnings are lines starting with",
        "`warning:`, and the run goes on.",
        "",
        "Policy for unreadable files: a frame or mask that is missing, empty, truncated, corrupt or not an",
        "image stops the run with an error naming the file; it is never skipped, because dropping a frame",
        "would silently change its video's temporal neighbours and flows. Files without an image suffix",
        "are skipped with a warning. Videos shorter than a temporal method's clip are skipped for its",
        "training with a warning, and the run fails only when no training video is long enough.",
        "",
        "| bad input | command | exit | what the user sees |",
        "|---|---|---|---|",
    ]
    for bad, command, code, seen in rows:
        lines.append(f"| {cell(bad)} | `{cell(command)}` | {code} | {cell(seen)} |")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_bad_input_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WSBENCH_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    rows, failures = [], []
    for i, case in enumerate(CASES):
        work = tmp_path / f"case{i}"
        data = work / "data"
        work.mkdir()
        args = case.make(data)
        extra = [*(["--runs-dir", str(work / "runs"), "-q"] if case.run_options else []),
                 *(TINY if case.tiny else []), *case.recipe]
        with monkeypatch.context() as patch:
            if case.patch or case.after_divergence:
                (case.patch or _nan_from_epoch_2)(patch)
            if case.after_divergence:
                assert _invoke(runner, [*args, *extra]).exit_code == 1
                patch.undo()
            if case.damage:
                first = _invoke(runner, [*args, *extra])
                assert first.exit_code == 0, first.output
                case.damage(work)
            result = _invoke(runner, [*args, *extra])
        out, err = result.stdout.strip(), result.stderr.strip()
        command = _normalise("wsbench " + " ".join([*args, *case.recipe]), work)
        where = f"{case.input}: exit {result.exit_code}, stdout {out!r}, stderr {err!r}"
        if case.ok:
            seen = [line for line in err.splitlines() if line]
            seen += out.splitlines()[:1] if case.summary else ["(the run finishes and prints its scores)"]
            if result.exit_code != 0 or case.expect not in err + out:
                failures.append(where)
            if any(not line.startswith("warning: ") for line in err.splitlines() if line):
                failures.append(f"{where}: stderr has lines other than one-line warnings")
        else:
            seen = err.splitlines()
            if (result.exit_code == 0 or len(seen) != 1 or not seen[0].startswith("Error: ")
                    or case.expect not in seen[0] or out or "Traceback" in err):
                failures.append(where)
            if not case.usage:  # --debug: the exception propagates (a traceback in a terminal)
                with monkeypatch.context() as patch:
                    if case.patch:
                        case.patch(patch)
                    debug = _invoke(runner, ["--debug", *args, *extra])
                if not isinstance(debug.exception, (UserError, RegistryError)):
                    failures.append(f"{case.input}: --debug gave {debug.exception!r}, not the error itself")
        rows.append((case.input, command, result.exit_code, _normalise("<br>".join(seen), work)))
    assert not failures, "\n".join(failures)

    # the GT-less run wrote maps for its test frames instead of an IoU
    (gtless,) = [i for i, c in enumerate(CASES) if c.input == "GT-less data set"]
    (record,) = iter_runs(tmp_path / f"case{gtless}" / "runs")
    assert record.result["metrics"]["iou_illegal"] is None and record.result["maps"]["frames"] > 0
    maps_dir = record.path.parent / record.result["maps"]["dir"]
    assert len(list(maps_dir.rglob("*.png"))) == record.result["maps"]["frames"]

    text = _render(rows)
    if os.environ.get("WSBENCH_WRITE_DOCS") == "1":
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text)
    # installed plugins add to the lists of available names: compare the built-in names only
    from wsbench.data import DATASETS
    from wsbench.flow import FLOWS
    from wsbench.methods import METHODS

    builtin = {e.name for r in (METHODS, DATASETS, FLOWS) for e in r.entries() if e.source == "built-in"}

    def same(doc: str) -> str:
        keep = lambda m: ", ".join(n for n in m.group(1).strip().split(", ") if n in builtin)  # noqa: E731
        return re.sub(r"available: ([^|]*)", lambda m: f"available: {keep(m)} ", doc)
    assert DOC.exists() and same(DOC.read_text()) == same(text), \
        f"{DOC} is stale: rerun with WSBENCH_WRITE_DOCS=1 and commit it"


# -- diverging training -----------------------------------------------------------------------
def _tiny(epochs: int) -> list[str]:
    return [*TINY, "--epochs", str(epochs)]


def _belt_run(belt: Path, runs: Path, epochs: int = 3, method: str = "cam") -> list[str]:
    return ["run", "-m", method, "-d", "video-folder", "--data-root", str(belt), "--runs-dir", str(runs), "-q",
            *_tiny(epochs)]


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_and_keeps_last_checkpoint(tiny_belt, tmp_path, monkeypatch):
    _nan_from_epoch_2(monkeypatch)
    runs = tmp_path / "runs"
    runner = CliRunner()
    result = _invoke(runner, _belt_run(tiny_belt, runs))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "loss became nan at epoch 2" in lines[0] and "last good checkpoint:" in lines[0]
    assert "checkpoint.pt (epoch 1)" in lines[0] and "lower --lr" in lines[0]
    (folder,) = (runs / "classifiers").glob("*/")
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["epoch"] == 0
    assert not (folder / "final.pt").exists() and not list(iter_runs(runs))
    # the same command again refuses to start over silently
    again = _invoke(runner, _belt_run(tiny_belt, runs))
    assert again.exit_code == 1 and "pass --resume to continue it" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


# -- interrupted runs, determinism, concurrent runs -------------------------------------------
# a wsbench process that pauses (printing PAUSED) in the middle of epoch 2, after the first checkpoint
_PAUSING = """
import sys, time
from wsbench.cli import main
from wsbench.methods import create_method
cls = type(create_method(sys.argv[3]))
original = cls.training_losses
def pausing(self, model, batch, progress):
    if progress.step == progress.steps_per_epoch + 1:
        print("PAUSED", flush=True)
        time.sleep(300)
    return original(self, model, batch, progress)
cls.training_losses = pausing
main()
"""


def _spawn(args: list[str], cache: Path, pause: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), WSBENCH_CACHE_DIR=str(cache), WSBENCH_PROGRESS="0")
    code = _PAUSING if pause else "from wsbench.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_paused(proc: subprocess.Popen) -> None:
    for line in proc.stdout:  # EOF (a crash) ends the loop too
        if line.strip() == "PAUSED":
            return
    raise AssertionError(f"never paused: {proc.wait()} {proc.stderr.read()}")


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def _outcome(runs: Path) -> tuple[dict, dict]:
    """(scores of the only finished run, weights of its classifier)."""
    (record,) = iter_runs(runs)
    r = record.result
    scores = {k: r[k] for k in ("metrics", "baselines", "curves", "counts", "accuracy_by_input")}
    return scores, torch.load(runs / r["classifier"]["path"] / "final.pt", weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_stopped_in_epoch_2(runs: Path) -> None:
    (folder,) = (runs / "classifiers").glob("*/")
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["epoch"] == 0
    assert not (folder / "final.pt").exists() and not list(iter_runs(runs))


@pytest.mark.slow
def test_interrupted_runs_resume_to_the_uninterrupted_result(tiny_belt, tmp_path, monkeypatch):
    """SIGINT in epoch 2 of 3, kill -9 of the resumed run in epoch 2, then --resume: the uninterrupted result."""
    from wsbench.methods import create_method

    runs, runner = tmp_path / "interrupted", CliRunner()
    command = _belt_run(tiny_belt, runs)
    cls = type(create_method("cam"))
    original = cls.training_losses

    def interrupt(self, model, batch, progress):
        if progress.step == progress.steps_per_epoch + 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt at the next bytecode
        return original(self, model, batch, progress)

    # a shell's background job starts with SIGINT ignored, and then Python installs no KeyboardInterrupt handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(cls, "training_losses", interrupt)
            result = _invoke(runner, command)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130 and "run the same command with --resume" in result.stderr, result.output
    _check_stopped_in_epoch_2(runs)
    killed = _spawn([*command, "--resume"], tmp_path / "cache", pause=True)
    _wait_paused(killed)
    killed.kill()
    assert killed.wait(timeout=120) == -signal.SIGKILL
    killed.communicate()
    _check_stopped_in_epoch_2(runs)
    result = _invoke(runner, [*command, "--resume"])
    assert result.exit_code == 0, result.output
    assert len(list(iter_runs(runs, finished=None))) == 1  # the interrupted run record was finished
    uninterrupted = _invoke(runner, _belt_run(tiny_belt, tmp_path / "uninterrupted"))
    assert uninterrupted.exit_code == 0, uninterrupted.output
    (scores, weights), (other_scores, other_weights) = _outcome(tmp_path / "uninterrupted"), _outcome(runs)
    assert other_scores == scores and scores["metrics"]["iou_illegal"] is not None
    assert _same_weights(other_weights, weights)


@pytest.mark.slow
def test_same_command_twice_gives_identical_results(tiny_belt, tmp_path):
    runner = CliRunner()
    for runs in ("first", "second"):  # separate runs dirs, so the classifier is trained twice
        result = _invoke(runner, _belt_run(tiny_belt, tmp_path / runs, epochs=2))
        assert result.exit_code == 0, result.output
    first, second = _outcome(tmp_path / "first"), _outcome(tmp_path / "second")
    assert first[0] == second[0] and first[0]["metrics"]["iou_illegal"] is not None
    assert _same_weights(first[1], second[1])


@pytest.mark.slow
def test_two_runs_at_once_into_one_runs_dir(tiny_belt, tmp_path):
    """gradcam and f2f share a classifier: one trains it while the other waits, neither corrupts the other."""
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    procs = [_spawn(_belt_run(tiny_belt, runs, epochs=1, method=m), cache) for m in ("gradcam", "f2f")]
    for proc in procs:
        _finish(proc)
    records = list(iter_runs(runs, finished=None))
    assert sorted(r.result["method"] for r in records) == ["f2f", "gradcam"]
    assert len({r.run_id for r in records}) == 2
    assert len(list((runs / "classifiers").glob("*/final.pt"))) == 1
    assert sum(r.result["classifier"]["trained_now"] for r in records) == 1
    assert not list(runs.rglob(".*.tmp*"))  # no temporary files left behind


def test_run_ids_are_unique_even_when_names_collide(tmp_path, monkeypatch):
    import wsbench.runs.records as runs_module

    names = iter(["same", "same", "other"])
    monkeypatch.setattr(runs_module, "new_run_id", lambda method, dataset: next(names))
    first = runs_module.create_run(tmp_path, {"method": "cam", "dataset": "d", "n": 1})
    second = runs_module.create_run(tmp_path, {"method": "cam", "dataset": "d", "n": 2})
    assert (first.run_id, second.run_id) == ("same", "other")
    assert json.loads((first.path / "config.json").read_text())["n"] == 1


def test_leaderboard_ignores_half_written_runs(tmp_path):
    runs = tmp_path / "runs"
    finished = {"run_id": "r5", "method": "cam", "dataset": "belt", "seed": 0, "config_hash": "h",
                "metrics": {"iou_illegal": 0.4321, "threshold": 0.5},
                "baselines": {"all_foreground": {"iou_illegal": 0.2}}, "config": {"method_options": {}}}
    atomic_write_json(runs / "r5" / "config.json", {"method": "cam", "dataset": "belt", "seed": 0, "recipe": {}})
    atomic_write_json(runs / "r5" / "result.json", finished)
    atomic_write_json(runs / "r1" / "config.json", {"method": "gradcam"})  # still running
    atomic_write_json(runs / "r2" / "config.json", {"method": "f2f"})
    (runs / "r2" / "result.json").write_text(json.dumps(finished)[:40])  # truncated
    atomic_write_json(runs / "r3" / "config.json", {"method": "puzzlecam"})
    (runs / "r3" / "result.json").write_text("null")
    (runs / "r4").mkdir()  # created, nothing written yet
    (runs / "r6").mkdir()
    (runs / "r6" / "config.json").write_text('{"method": "tc')  # truncated config
    (runs / "notes.txt").write_text("not a run")
    assert [r.run_id for r in iter_runs(runs)] == ["r5"]
    assert [r.run_id for r in iter_runs(runs, finished=False)] == ["r1"]
    result = _invoke(CliRunner(), ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "43.21" in result.stdout and not result.stderr
    result = _invoke(CliRunner(), ["leaderboard", "--table", "long", "--format", "json", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and {row["run_id"] for row in json.loads(result.stdout)} == {"r5"}


# -- fuzzing the loaders ----------------------------------------------------------------------
def _encodings() -> list[tuple[str, bytes]]:
    """Valid files of odd shapes and formats."""
    rng = np.random.default_rng(0)
    arrays = {
        "1x1": np.full((1, 1, 3), 200, np.uint8),
        "gray": rng.integers(0, 256, (9, 7), dtype=np.uint8),
        "gray16": rng.integers(0, 65536, (6, 5), dtype=np.uint16),
        "rgb16": rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16),
        "bgra": rng.integers(0, 256, (5, 8, 4), dtype=np.uint8),
        "wide": rng.integers(0, 256, (1, 2000, 3), dtype=np.uint8),
        "tall": rng.integers(0, 256, (1500, 2), dtype=np.uint8),
        "labels01": (rng.random((8, 8)) > 0.5).astype(np.uint8),
        "rgb": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
    }
    out = []
    for name, array in arrays.items():
        for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp"):
            if array.dtype == np.uint16 and ext not in (".png", ".tiff"):
                continue
            ok, buf = cv2.imencode(ext, array)
            if ok:
                out.append((f"{name}{ext}", buf.tobytes()))
    out.append(("float.tiff", cv2.imencode(".tiff", rng.random((4, 6)).astype(np.float32))[1].tobytes()))
    return out


def _fuzz_inputs() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(8)
    valid = _encodings()
    cases = list(valid)
    cases.append(("zero.png", b""))
    cases += [(f"random{i}.png", rng.bytes(int(rng.integers(1, 3000)))) for i in range(40)]
    for name, data in valid:  # truncations, bit flips, a valid signature followed by garbage
        for frac in (0.1, 0.5, 0.9):
            cases.append((f"cut{frac}-{name}", data[: max(1, int(len(data) * frac))]))
        flipped = bytearray(data)
        for pos in rng.integers(0, len(data), 4):
            flipped[pos] ^= int(rng.integers(1, 256))
        cases.append((f"flip-{name}", bytes(flipped)))
        cases.append((f"head-{name}", data[:16] + rng.bytes(200)))
    return cases


def test_fuzzed_files_give_an_image_or_a_one_line_error_naming_the_file(tmp_path):
    cases = _fuzz_inputs()
    assert 200 <= len(cases) <= 400
    decoded = 0
    for i, (name, data) in enumerate(cases):
        path = tmp_path / f"{i:03d}-{name}"
        path.write_bytes(data)
        for reader in (read_image, read_mask):
            try:
                out = reader(path)
            except UserError as err:
                assert str(path) in str(err) and "\n" not in str(err), (name, err)
                continue
            decoded += 1
            if reader is read_image:
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size, name
            else:
                assert out.dtype == bool and out.ndim == 2 and out.size, name
    assert decoded >= 2 * len(_encodings())  # every valid file was read by both loaders
    for missing in (tmp_path / "missing.png", tmp_path):  # a missing file, a folder
        with pytest.raises(UserError, match=re.escape(str(missing))):
            read_image(missing)


def test_masks_of_every_common_encoding_mean_the_same_object(tmp_path):
    """White, coloured, 16-bit and 0/1 label masks all give the object; JPEG noise does not."""
    obj = np.zeros((10, 12), bool)
    obj[2:6, 3:9] = True
    variants = {
        "white.png": obj.astype(np.uint8) * 255,
        "red.png": np.dstack([np.zeros_like(obj, np.uint8)] * 2 + [obj.astype(np.uint8) * 255]),  # BGR red
        "labels.png": obj.astype(np.uint8),
        "deep.png": obj.astype(np.uint16) * 65535,
        "alpha.png": np.dstack([obj.astype(np.uint8) * 255] * 3 + [np.full(obj.shape, 255, np.uint8)]),
        "white.jpg": obj.astype(np.uint8) * 255,
    }
    for name, array in variants.items():
        cv2.imwrite(str(tmp_path / name), array)
        mask = read_mask(tmp_path / name, (12, 10))
        assert (mask == obj).mean() > (0.97 if name.endswith(".jpg") else 0.999), name
