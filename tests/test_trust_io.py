"""Trustworthy inputs and outputs: recordings, label images, flow and weights files, leaks, half-written outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wsbench.data import create_dataset
from wsbench.errors import UserError

from .conftest import write_mp4_folder


# -- segmented recordings: one recording, one split -----------------------------------------------
def _recording_splits(index) -> dict[str, set[str]]:
    """``{label/recording: {splits of its segments}}``."""
    out: dict[str, set[str]] = {}
    for v in index.videos:
        out.setdefault(f"{v.label}/{v.id.rsplit('-', 1)[0]}", set()).add(v.split)
    return out


def test_segments_of_one_recording_never_span_two_splits(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=40)  # 3 recordings a camera, 4 one-second segments each
    for seed in range(8):
        index = create_dataset("video-folder", root=root, segment_seconds=1.0, split_seed=seed)
        assert len(index.videos) == 24
        spans = _recording_splits(index)
        assert all(len(s) == 1 for s in spans.values()), (seed, spans)
        for label in ("before", "after"):  # three recordings: one each for train, val and test
            assert sorted(next(iter(s)) for k, s in spans.items() if k.startswith(label)) == ["test", "train", "val"]
    # a splits.json listing recordings by name (bare or by camera) covers all of their segments
    (root / "splits.json").write_text(json.dumps({"train": ["vid0", "before/vid1"], "val": ["after/vid1"],
                                                  "test": ["vid2"]}))
    index = create_dataset("video-folder", root=root, segment_seconds=1.0)
    assert {k: s.pop() for k, s in _recording_splits(index).items()} == {
        "before/vid0": "train", "after/vid0": "train", "before/vid1": "train", "after/vid1": "val",
        "before/vid2": "test", "after/vid2": "test"}
    # segments listed one by one still work, and so do whole files without segment_seconds
    (root / "splits.json").write_text(json.dumps({"train": ["vid0-000", "vid0-001"], "test": ["vid2-003"]}))
    with pytest.warns(UserWarning, match="in no split are not used"):
        index = create_dataset("video-folder", root=root, segment_seconds=1.0)
    assert sorted(v.key for v in index.videos) == ["after/vid0-000", "after/vid0-001", "after/vid2-003",
                                                   "before/vid0-000", "before/vid0-001", "before/vid2-003"]
    (root / "splits.json").write_text(json.dumps({"train": ["vid0"], "val": ["vid1"], "test": ["vid2"]}))
    assert len(create_dataset("video-folder", root=root).videos) == 6
    (root / "splits.json").write_text(json.dumps({"train": ["vid0", "vid7"]}))
    with pytest.raises(UserError, match="'vid7', which is not in the data set"):
        create_dataset("video-folder", root=root, segment_seconds=1.0)


# -- label images: palette PNGs by index, low-bit grayscale by value -------------------------------
def _png(width: int, height: int, depth: int, colour: int, rows: bytes, chunks: tuple[tuple[bytes, bytes], ...] = ()
         ) -> bytes:
    """A PNG written by hand (filter type 0 on every row) with extra chunks before IDAT."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, colour, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, b) for k, b in chunks)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _packed_rows(labels, depth: int) -> bytes:
    """Rows of ``labels`` packed at ``depth`` bits a pixel, each row after its filter byte."""
    import numpy as np

    per = 8 // depth
    out = bytearray()
    for row in labels:
        out.append(0)
        padded = list(row) + [0] * (-len(row) % per)
        for i in range(0, len(padded), per):
            byte = 0
            for v in padded[i:i + per]:
                byte = (byte << depth) | int(v)
            out.append(byte)
    return bytes(out) if depth < 8 else b"".join(b"\x00" + np.asarray(r, np.uint8).tobytes() for r in labels)


def test_label_images_are_read_as_labels_whatever_their_png_mode(tmp_path):
    import numpy as np

    from wsbench.data.io import read_mask

    obj = np.zeros((6, 10), np.uint8)
    obj[1:4, 2:7] = 1
    dark = bytes([255, 255, 255, 20, 0, 30])  # index 0 white, index 1 a dark purple
    cases = {
        "palette-dark.png": _png(10, 6, 8, 3, _packed_rows(obj, 8), ((b"PLTE", dark),)),
        "palette-1bit.png": _png(10, 6, 1, 3, _packed_rows(obj, 1), ((b"PLTE", dark),)),
        "palette-alpha.png": _png(10, 6, 8, 3, _packed_rows(obj, 8),
                                  ((b"PLTE", dark), (b"tRNS", bytes([0, 0])))),  # both indices transparent
        "palette-classes.png": _png(10, 6, 8, 3, _packed_rows(obj * 7, 8),
                                    ((b"PLTE", bytes(3 * 256)),)),  # all-black palette, index 7 = object
        "gray-2bit.png": _png(10, 6, 2, 0, _packed_rows(obj, 2)),
        "gray-4bit.png": _png(10, 6, 4, 0, _packed_rows(obj, 4)),
        "gray-4bit-grey.png": _png(10, 6, 4, 0, _packed_rows(obj * 15, 4)),  # a grey-level mask, not labels
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert np.array_equal(read_mask(tmp_path / name, (10, 6)), obj.astype(bool)), name
    with pytest.raises(UserError, match="palette-dark.png: mask is 10x6 but its frame is 6x10"):
        read_mask(tmp_path / "palette-dark.png", (6, 10))
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every palette index decodes to itself
    (tmp_path / "ramp.png").write_bytes(_png(16, 16, 8, 3, _packed_rows(every, 8),
                                             ((b"PLTE", bytes(range(256)) * 3),)))
    assert np.array_equal(read_mask(tmp_path / "ramp.png"), every > 0)


# -- the pixel limit holds for every format -------------------------------------------------------
def test_pixel_limit_holds_for_tiff_and_other_formats_are_refused(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from wsbench.data.io import declared_size, read_image, read_mask

    for order in ("little", "big"):
        head = b"II*\x00" if order == "little" else b"MM\x00*"
        n = lambda v, k, o=order: v.to_bytes(k, o)  # noqa: E731
        entries = [(256, 4, 16000), (257, 3, 16000), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 100),
                   (277, 3, 1), (278, 4, 16000), (279, 4, 256_000_000)]
        ifd = n(len(entries), 2) + b"".join(n(t, 2) + n(k, 2) + n(1, 4) + (n(v, 2) + b"\0\0" if k == 3 else n(v, 4))
                                            for t, k, v in entries) + n(0, 4)
        bomb = tmp_path / f"bomb-{order}.tif"
        bomb.write_bytes(head + n(8, 4) + ifd + bytes(64))
        assert declared_size(bomb.read_bytes()) == (16000, 16000)
        decoded: list = []
        monkeypatch.setattr(cv2, "imdecode", lambda *a, seen=decoded: seen.append(a) or None)
        for read in (read_image, read_mask):
            with pytest.raises(UserError, match=rf"bomb-{order}.tif: declares 16000x16000 pixels \(256 megapixels\)"):
                read(bomb)
        assert not decoded
        monkeypatch.undo()
    image = np.zeros((40, 48, 3), np.uint8)
    for ext in (".tiff", ".bmp"):
        cv2.imwrite(str(tmp_path / f"frame{ext}"), image)
        assert read_image(tmp_path / f"frame{ext}").shape == (40, 48, 3)
        monkeypatch.setenv("WSBENCH_MAX_IMAGE_PIXELS", "1000")
        with pytest.raises(UserError, match=f"frame{ext}: declares 48x40 pixels"):
            read_image(tmp_path / f"frame{ext}")
        monkeypatch.delenv("WSBENCH_MAX_IMAGE_PIXELS")
    refused = []
    for ext in (".ppm", ".pfm", ".hdr", ".sr", ".exr", ".jp2"):  # formats OpenCV decodes by their content
        try:
            ok, buf = cv2.imencode(ext, image if ext != ".pfm" else image.astype(np.float32))
        except cv2.error:  # an encoder this OpenCV build lacks
            continue
        assert cv2.imdecode(buf, cv2.IMREAD_COLOR) is not None
        path = tmp_path / f"other{ext.replace('.', '-')}.png"  # named like a frame
        path.write_bytes(buf.tobytes())
        with pytest.raises(UserError, match=f"{path.name}: not a readable image .unsupported format"):
            read_image(path)
        refused.append(ext)
    assert ".ppm" in refused and ".sr" in refused


# -- .flo files must fit their frames -------------------------------------------------------------
def test_flow_files_of_the_wrong_size_are_refused_naming_the_file(tmp_path):
    import numpy as np

    from wsbench.flow import FlowFiles, flo_path, write_flo

    from .conftest import write_video_folder

    data = write_video_folder(tmp_path / "data", videos=1, frames=3)  # 48x40 frames
    index = create_dataset("video-folder", root=data)
    video = index.videos[0]
    root = tmp_path / "flo"

    def write_all(height: int, width: int) -> Path:
        for n in range(len(video) - 1):
            path = flo_path(root, index, video, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.full((height, width, 2), 1.0, np.float32))
        return flo_path(root, index, video, 0)

    for height, width in ((40, 48), (20, 24), (80, 96), (7, 8), (13, 16)):  # the frame's shape at any scale
        write_all(height, width)
        forward, _ = FlowFiles(str(root)).video_flows(index, video, (20, 24))
        assert forward.shape == (3, 20, 24, 2) and np.isfinite(forward).all()
    for height, width in ((1, 1), (48, 40), (40, 40), (4, 5)):  # 1x1, transposed, square, below 1/8
        first = write_all(height, width)
        with pytest.raises(UserError, match=f"{first}' is {width}x{height} but its frame is 48x40") as err:
            FlowFiles(str(root)).video_flows(index, video, (20, 24))
        assert "\n" not in str(err.value)


# -- distill with few steps -----------------------------------------------------------------------
def test_segmenter_schedule_handles_any_number_of_steps():
    import math

    import torch

    from wsbench.distill import one_cycle

    def rates(total: int, make) -> list[float]:
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
        sched = make(opt, total)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    for total in range(1, 6):  # OneCycleLR's own warm-up ends at or before step 0: it divides by zero
        seen = rates(total, lambda opt, t: one_cycle(opt, 3e-3, t))
        assert len(seen) == total and all(math.isfinite(r) and 0 < r <= 3e-3 * (1 + 1e-9) for r in seen)
        assert max(seen) == pytest.approx(3e-3)  # the peak is reached, not only the cycle's start and end
    for total in (6, 7, 40):  # from six steps on: exactly OneCycleLR(pct_start=0.2)
        reference = rates(total, lambda opt, t: torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=t,
                                                                                    pct_start=0.2))
        assert rates(total, lambda opt, t: one_cycle(opt, 3e-3, t)) == reference


@pytest.mark.slow
def test_suite_with_a_smoke_distill_stage_on_few_frames_prints_its_tables(tmp_path):
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.runs import iter_runs

    from .conftest import write_video_folder

    data = write_video_folder(tmp_path / "data", frames=10)  # 40 train frames: 5 steps of the smoke batch of 8
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "few"\ndatasets = ["video-folder"]\nseeds = [0]\ntables = ["comparison", "stages"]\n'
                    f'[recipe]\nname = "smoke"\n[datasets_options."video-folder"]\ndata_root = "{data}"\n'
                    '[distill]\nrecipe = "smoke"\n[[runs]]\nmethod = "cam"\n')
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["suite", str(spec), "--runs-dir", str(runs), "--cache-dir",
                                      str(tmp_path / "cache"), "-q"])
    assert result.exit_code == 0, result.output
    assert "**Comparison" in result.output and "**Two stages on video-folder" in result.output
    assert len(list(iter_runs(runs, finished=False))) == 0  # nothing unfinished left behind
    assert len(list(iter_runs(runs))) == 2


# -- junk weights files: one line naming the file, whatever the bytes -----------------------------
def _junk_weights(real: bytes, count: int = 300) -> list[tuple[str, bytes]]:
    """``count`` deterministic junk files: random bytes, text, truncations and bit flips of ``real`` (a
    torch zip file), zips with wrong or damaged members, and valid torch files holding no state dict."""
    import io
    import random
    import zipfile

    import torch

    rng = random.Random(25)
    cases: list[tuple[str, bytes]] = [("empty", b""), ("passwd", b"root:x:0:0:root:/root:/bin/bash\n" * 20),
                                      ("text", b"weights? no.\n"), ("pickle-ish", b"\x80\x02]q\x00.")]
    for value in ([1, 2], 3, "x", None, {}, {"a": 1}, {1: torch.zeros(1)}, {"model": [torch.zeros(1)]},
                  {"state_dict": {"w": "not a tensor"}}, {"epoch": "one", "model": {}}):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        cases.append((f"holds-{type(value).__name__}", buffer.getvalue()))
    with zipfile.ZipFile(io.BytesIO(real)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for drop in sorted(members):  # each member missing, then each member garbled
        for garble in (False, True):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for name, data in members.items():
                    if name != drop:
                        archive.writestr(name, data)
                    elif garble:
                        archive.writestr(name, data[: len(data) // 2] + b"\xff" * 8)
            cases.append((f"{'garbled' if garble else 'without'}-{drop.rsplit('/', 1)[-1]}", buffer.getvalue()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "a zip, but not of torch")
    cases.append(("zip-of-other-members", buffer.getvalue()))
    while len(cases) < count:
        kind = len(cases) % 3
        if kind == 0:
            cases.append(("random", rng.randbytes(rng.randint(1, 4000))))
        elif kind == 1:
            cases.append(("truncated", real[: rng.randint(1, len(real) - 1)]))
        else:
            flipped = bytearray(real)
            for _ in range(rng.randint(1, 6)):
                flipped[rng.randrange(len(flipped))] ^= rng.randint(1, 255)
            cases.append(("flipped", bytes(flipped)))
    return cases[:count]


def test_junk_weights_files_are_one_line_naming_the_file(tmp_path):
    import io

    import torch

    from wsbench.checkpoint import resume_training as _resume
    from wsbench.distill import DISTILL_RECIPES, SegmenterNet
    from wsbench.model import CamNet, load_pretrained, load_weights

    model = CamNet("wsbench_resnet_tiny", output_stride=8)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": 0, "elapsed": 1.5}, buffer)
    real = buffer.getvalue()
    (tmp_path / "real.pt").write_bytes(real)  # each junk file goes through one loader in turn, the odd ones all
    assert _resume(tmp_path / "real.pt", model, optimizer, scheduler) == (1, 1.5)  # the real file loads
    segmenter = SegmenterNet(DISTILL_RECIPES["smoke"])
    backbone = CamNet("wsbench_resnet_tiny", output_stride=8).backbone
    loaders = {
        "--pretrained": lambda p: load_pretrained(backbone, p),
        "final.pt": lambda p: load_weights(model, p),
        "checkpoint.pt": lambda p: _resume(p, model, optimizer, scheduler),
        "distill --pretrained": lambda p: segmenter.load_encoder(p),
    }
    cases = _junk_weights(real)
    assert len(cases) == 300
    escaped, refused = [], 0
    for i, (name, data) in enumerate(cases):
        path = tmp_path / f"{i:03d}-{name}.pt"
        path.write_bytes(data)
        every = name.split("-")[0] in ("empty", "passwd", "text", "pickle", "holds", "without", "garbled")
        for what, load in list(loaders.items()) if every else [list(loaders.items())[i % len(loaders)]]:
            try:
                load(path)
            except UserError as err:
                refused += 1
                if str(path) not in str(err) or "\n" in str(err):
                    escaped.append(f"{what} {path.name}: {err}")
            except Exception as err:  # noqa: BLE001 - exactly what must not happen
                escaped.append(f"{what} {path.name}: {type(err).__name__}: {err}")
            else:  # only a readable torch file of the right content may load (a flip in tensor data, metadata)
                if name.split("-")[0] in ("empty", "passwd", "text", "pickle", "holds", "random", "truncated"):
                    escaped.append(f"{what} {path.name}: accepted")
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:20])
    assert refused > 0.8 * len(cases)


# -- interrupted cache builds leave nothing behind -------------------------------------------------
_SLOW_BUILD = r"""
import os, sys, time
from wsbench.data import cache, create_dataset

real = cache.frame_arrays
def slow(*args, **kwargs):
    os.write(1, b"frame\n")  # one write: two threads' lines never interleave
    time.sleep(0.3)
    return real(*args, **kwargs)
cache.frame_arrays = slow
cache.prepare(create_dataset("video-folder", root=sys.argv[1]), (32, 32), sys.argv[2], workers=2)
print("done", flush=True)
"""


def _hidden(cache_root: Path) -> list[Path]:
    return sorted(p for p in cache_root.rglob(".*"))


def _start_build(data: Path, cache_root: Path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(data), str(cache_root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(3):  # a few frames in: the temporary folder holds its preallocated arrays
        assert proc.stdout.readline() == "frame\n", proc.stderr.read() if proc.stderr else ""
    assert any((p / "frames.npy").is_file() for p in _hidden(cache_root)), _hidden(cache_root)
    return proc


def test_sigterm_and_kill_during_a_cache_build_leave_nothing_that_stays(tmp_path):
    import signal

    from wsbench.data.cache import prepare

    from .conftest import write_video_folder

    data = write_video_folder(tmp_path / "data", frames=8)
    cache_root = tmp_path / "cache"
    proc = _start_build(data, cache_root)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    frames = sum(1 for part in ("before", "after") for p in (data / part).rglob("*") if p.is_file())
    # stopped after the frames being written, not after the whole data set
    assert "done" not in out and 3 + out.count("frame\n") < frames, (out, frames)
    assert _hidden(cache_root) == [] and not list(cache_root.rglob("meta.json"))  # nothing left, nothing "finished"

    proc = _start_build(data, cache_root)
    proc.kill()  # kill -9: no chance to clean up
    proc.communicate(timeout=60)
    left = _hidden(cache_root)
    assert left and all(f"-{proc.pid}." in p.name for p in left)
    index = create_dataset("video-folder", root=data)
    prepared = prepare(index, (32, 32), cache_root)  # the next start removes what the dead process left
    assert _hidden(cache_root) == [] and prepared.num_frames == 6 * 8
    # a live owner's build is left alone, and so is another host's
    for name in (f".32x32-bg22-m3.{os.uname().nodename.replace('.', '')}-{os.getpid()}.abc", ".32x32.otherhost-1.abc"):
        (prepared.path.parent / name).mkdir()
    assert prepare(index, (32, 32), cache_root).num_frames == 48
    assert len(_hidden(cache_root)) == 2


# -- outputs inside a data root the command reads --------------------------------------------------
TINY = ["--recipe", "smoke", "-q"]


def _cli(*args):
    from click.testing import CliRunner

    from wsbench.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="wsbench")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_outputs_inside_a_data_root_are_refused_and_long_video_ids_export(tmp_path, monkeypatch):
    from .conftest import write_video_folder

    data = write_video_folder(tmp_path / "data")
    long_id = "v" * 240  # a folder name file systems allow; with label and frame name no file name would fit
    for folder in (data / "before", data / "masks" / "before"):
        (folder / "vid2").rename(folder / long_id)
    (data / "splits.json").write_text(json.dumps({"train": ["vid0"], "val": ["vid1"],
                                                  "test": ["before/" + long_id, "after/vid2"]}))
    before = _listing(data)
    cache = tmp_path / "cache"
    for option, inside in (("--runs-dir", data / "masks" / "before"), ("--runs-dir", data),
                           ("--cache-dir", data / "before" / "vid0")):
        args = ["--runs-dir", tmp_path / "runs", "--cache-dir", cache, option, inside]
        result = _cli("run", "-m", "cam", "-d", "video-folder", "--data-root", data, *args, *TINY)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == (f"Error: {option} {inside}: is inside the data root {data}, which this "
                                         "command reads; choose a folder outside it"), result.output
        assert _listing(data) == before
    runs = tmp_path / "runs"
    ran = _cli("run", "-m", "cam", "-d", "video-folder", "--data-root", data, "--runs-dir", runs, "--cache-dir",
               cache, *TINY)
    assert ran.exit_code == 0, ran.output
    (run_dir,) = [p for p in runs.iterdir() if p.name != "classifiers"]
    figures = _cli("figures", "--runs-dir", runs, "--cache-dir", cache, "--out", data / "before" / "vid0")
    assert figures.exit_code == 1 and "--out" in figures.output and "is inside the data root" in figures.output
    assert len(figures.output.strip().splitlines()) == 1
    distilled = _cli("distill", "--run", run_dir, "--runs-dir", data / "masks", "--cache-dir", cache,
                     "--recipe", "smoke", "-q")
    assert distilled.exit_code == 1 and f"--runs-dir {data / 'masks'}: is inside the data root" in distilled.output
    assert _listing(data) == before
    # an export that fails midway leaves no folder behind that would block its retry ("not an empty folder")
    import wsbench.export

    real_write, calls = wsbench.export.write_image, []

    def failing_write(path, image):
        calls.append(path)
        if len(calls) > 3:
            raise UserError(f"{path}: cannot write image (the disk is full)")
        real_write(path, image)
    monkeypatch.setattr(wsbench.export, "write_image", failing_write)
    for existing in (False, True):
        if existing:
            (tmp_path / "x").mkdir()
        failed = _cli("export", "--run", run_dir, "--runs-dir", runs, "--cache-dir", cache, "--out", tmp_path / "x",
                      "-q")
        assert failed.exit_code == 1 and "the disk is full" in failed.output
        assert (tmp_path / "x").is_dir() == existing and not list((tmp_path / "x").glob("*"))
        calls.clear()
    monkeypatch.undo()
    import wsbench.figures

    def broken(*args):
        raise UserError("threshold sweep: drawing failed")
    monkeypatch.setattr(wsbench.figures, "threshold_sweeps", broken)
    figs = tmp_path / "figs"
    failed = _cli("figures", "--runs-dir", runs, "--out", figs, "--examples", "0")
    assert failed.exit_code == 1 and not list(figs.glob("*.png"))  # the ablation chart it drew first is gone
    monkeypatch.undo()
    drawn = _cli("figures", "--runs-dir", runs, "--out", figs, "--examples", "0")  # the retry is not refused
    assert drawn.exit_code == 0, drawn.output
    assert {p.name for p in figs.glob("*.png")} >= {"ablation.png", "threshold_sweep.png"}
    # a 240-character video id: export shortens the file names (a hash keeps them apart) instead of failing midway
    exported = _cli("export", "--run", run_dir, "--runs-dir", runs, "--cache-dir", cache, "--out", tmp_path / "x",
                    "-q")
    assert exported.exit_code == 0, exported.output
    names = [p.name for p in (tmp_path / "x" / "masks" / "test").iterdir()]
    long_names = [n for n in names if n.startswith("before_vvvv")]
    assert len(long_names) == 5 and len(set(long_names)) == 5 and all(len(n.encode()) <= 244 for n in long_names)
    assert sorted(p.name for p in (tmp_path / "x" / "images" / "test").iterdir()) == sorted(names)


# -- fetch: overlapping archives, over-long bodies, redirects to other schemes --------------------
class _Zenodo:
    """A fake Zenodo record on 127.0.0.1 serving ``routes``: ``{path: (status, body, headers)}``."""

    def __init__(self, routes: dict) -> None:
        import http.server
        import threading

        self.routes = routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                code, body, headers = routes.get(self.path, (404, b"not found", {}))
                self.send_response(code)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def record(self, files: list[tuple[str, bytes, int | None]]) -> None:
        """Serve record 14793518 (ws2) listing ``(key, body, listed size)``."""
        import hashlib

        entries = []
        for key, body, size in files:
            self.routes[f"/files/{key}"] = (200, body, {})
            entries.append({"key": key, "size": len(body) if size is None else size,
                            "checksum": "md5:" + hashlib.md5(body).hexdigest(),
                            "links": {"self": f"{self.url}/files/{key}"}})
        self.routes["/api/records/14793518"] = (200, json.dumps({"files": entries}).encode(), {})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _zip(members: dict[str, str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def fake_zenodo(monkeypatch):
    server = _Zenodo({})
    monkeypatch.setenv("WSBENCH_ZENODO_URL", server.url)
    yield server
    server.close()


def test_fetch_refuses_overlapping_archives_long_bodies_and_scheme_changing_redirects(fake_zenodo, tmp_path):
    from wsbench.fetch import fetch_dataset

    out = tmp_path / "out"
    fake_zenodo.record([("a.zip", _zip({"WS2/readme.txt": "from a", "WS2/a.txt": "a"}), None),
                        ("b.zip", _zip({"WS2/readme.txt": "from b"}), None)])
    with pytest.raises(UserError, match=r"b.zip: holds 'WS2/readme.txt', which a.zip holds too; the archives overlap"):
        fetch_dataset("ws2", out, echo=lambda line: None)
    assert not (out / "ws2").exists()
    fake_zenodo.record([("a/data.zip", _zip({"x.txt": "a"}), None), ("b/data.zip", _zip({"x.txt": "b"}), None)])
    assert (fetch_dataset("ws2", out, echo=lambda line: None) / "b" / "x.txt").read_text() == "b"  # apart: fine

    body = b"y" * 5000
    out = tmp_path / "long"
    fake_zenodo.record([("big.bin", body, 1000)])  # the record says 1000 bytes, the server sends 5000
    for _ in range(2):  # the retry fails the same clear way: no partial file is left to block it
        with pytest.raises(UserError, match="sends more than the record's 1000 bytes"):
            fetch_dataset("ws2", out, echo=lambda line: None)
        assert not list((out / ".wsbench-download").rglob("*.part"))

    out = tmp_path / "redirected"
    fake_zenodo.record([("r.zip", _zip({"r.txt": "r"}), None)])
    fake_zenodo.routes["/files/real.zip"] = fake_zenodo.routes["/files/r.zip"]
    fake_zenodo.routes["/files/r.zip"] = (302, b"", {"Location": "ftp://127.0.0.1/r.zip"})
    with pytest.raises(UserError, match=r"redirects to 'ftp://127.0.0.1/r.zip'; only redirects to http\(s\)"):
        fetch_dataset("ws2", out, echo=lambda line: None)
    fake_zenodo.routes["/files/r.zip"] = (302, b"", {"Location": "/files/real.zip"})  # same scheme: followed
    assert (fetch_dataset("ws2", out, echo=lambda line: None) / "r.txt").read_text() == "r"
    out = tmp_path / "empty"
    fake_zenodo.record([("empty.txt", b"", None)])  # a record's empty file is fetched as an empty file
    assert (fetch_dataset("ws2", out, echo=lambda line: None) / "empty.txt").read_bytes() == b""


# -- a plugin that calls sys.exit at import --------------------------------------------------------
def test_plugin_calling_sys_exit_at_import_warns_and_list_goes_on(tmp_path):
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    (site / "wsb_exiting_plugin.py").write_text("import sys\nsys.exit(3)\n")
    info = site / "wsb_exiting_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsb-exiting-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[wsbench.methods]\nexiting = wsb_exiting_plugin:Exiting\n")
    env = {k: v for k, v in os.environ.items() if k != "WSBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(Path(__file__).resolve().parent.parent)])
    listed = subprocess.run([sys.executable, "-m", "wsbench.cli", "list"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "method plugin 'exiting' from wsb-exiting-plugin 1.0 was not loaded: it called sys.exit(3)" \
        in listed.stderr
    assert "cam " in listed.stdout and "exiting" not in listed.stdout
