"""Trustworthy under attack: outputs never clobber inputs, pickles never run, writes never fail silently.

Each test names the class of failure it guards against; the commands are run through the CLI and
must end with exactly one line on stderr (no traceback) and leave nothing half-written behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.errors import UserError

TINY = ["--recipe", "smoke"]


def _cli(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="wsbench")


def _one_line_error(result, expect: str) -> str:
    """The single error line of a failed command; asserts there is exactly one and it names ``expect``."""
    lines = [line for line in result.stderr.splitlines() if line]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), \
        (result.exit_code, result.stdout, result.stderr)
    assert expect in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def _run_args(data: Path, runs: Path, cache: Path) -> list[str]:
    return ["run", "-m", "cam", "-d", "video-folder", "--data-root", str(data), "--runs-dir", str(runs),
            "--cache-dir", str(cache), "-q", *TINY]


@pytest.fixture
def finished(tiny_run):
    """The session's finished tiny ``cam`` run (:func:`tests.conftest.tiny_run`, read only): (data, runs dir,
    cache dir, run dir); a test that changes it works on a copy."""
    return tiny_run.data, tiny_run.runs, tiny_run.cache, tiny_run.run_dir


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. no command writes over or inside its input; options are checked before any work --------
def test_segment_never_writes_over_or_inside_its_input(tmp_path):
    """``--run nope``: every refusal comes before the run is even looked up, and nothing is written."""
    video = tmp_path / "belt.mp4"
    video.write_bytes(b"not really a video, but it must survive")
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "f0.png"), np.zeros((8, 8, 3), np.uint8))
    before = _files(tmp_path)
    out = tmp_path / "seg"
    cases = [
        ([video, "--out", out, "--overlay-video", video], "--overlay-video"),
        ([frames, "--out", out, "--overlay-video", frames / "overlay.mp4"], "inside the input folder"),
        ([frames, "--out", frames / "masks"], "inside the input folder"),
        ([frames, "--out", tmp_path], "contains the input"),
        ([video, "--out", video], "--out"),
        ([video, "--out", out, "--overlay-video", tmp_path / "o.mkv"], "must end in .mp4, .avi"),
        ([video, "--out", out, "--overlay-video", frames / "f0.png"], "--overlay-video"),
        ([video, "--out", out, "--fps", "0"], "--fps must be above 0"),
        ([video, "--out", out, "--fps", "nan"], "--fps must be above 0"),
        ([video, "--out", out, "--fps", "1e9"], "--fps must be above 0"),
        ([video, "--out", out, "--bg-frames", "0"], "--bg-frames must be at least 1"),
        ([video, "--out", out, "--batch-size", "0"], "--batch-size must be at least 1"),
        ([video, "--out", video / "sub"], "is a file, not a folder"),
    ]
    for args, expect in cases:
        _one_line_error(_cli("segment", "--run", "nope", *args), expect)
    assert _files(tmp_path) == before and not out.exists()
    # an existing overlay video is replaced only with --overwrite (checked before the run is loaded)
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"keep me")
    _one_line_error(_cli("segment", "--run", "nope", video, "--out", out, "--overlay-video", existing),
                    "exists; pass --overwrite")
    assert existing.read_bytes() == b"keep me"
    _one_line_error(_cli("segment", "--run", "nope", video, "--out", out, "--overlay-video", existing,
                         "--overwrite"), "no such run")


@pytest.mark.slow
def test_segment_overwrite_replaces_the_overlay_video(finished, tmp_path):
    _, runs, _, run_dir = finished
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        cv2.imwrite(str(frames / f"f{t}.png"), np.full((40, 48, 3), 40 * t, np.uint8))
    video = tmp_path / "overlay.avi"
    video.write_bytes(b"old")
    result = _cli("segment", "--run", run_dir.name, "--runs-dir", runs, frames, "--out", tmp_path / "seg",
                  "--overlay-video", video, "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert video.read_bytes() != b"old" and len(list((tmp_path / "seg" / "masks").glob("*.png"))) == 3


@pytest.mark.slow
def test_export_refuses_outputs_inside_its_inputs(finished, tmp_path):
    data, runs, cache, run_dir = finished
    before = _files(data)
    for out in (data / "pseudo", run_dir / "pseudo"):
        _one_line_error(_cli("export", "--run", run_dir, "--cache-dir", cache, "--out", out, "-q"),
                        "is inside the input folder")
    (tmp_path / "file").write_text("x")
    _one_line_error(_cli("export", "--run", "nope", "--out", tmp_path / "file"), "is a file, not a folder")
    assert _files(data) == before and not (run_dir / "pseudo").exists()


def test_data_show_and_flow_refuse_their_input_and_existing_outputs(video_folder, tmp_path):
    before = _files(video_folder)
    _one_line_error(_cli("data", "show", video_folder, "--out", video_folder / "sheet.png"),
                    "is inside the input folder")
    _one_line_error(_cli("data", "show", video_folder, "--out", tmp_path / "sheet.txt"), "must end in .png")
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"old")
    _one_line_error(_cli("data", "show", video_folder, "--out", sheet), "exists; pass --overwrite")
    assert sheet.read_bytes() == b"old"
    result = _cli("data", "show", video_folder, "--out", sheet, "--overwrite")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(sheet)) is not None
    _one_line_error(_cli("data", "flow", "-d", "video-folder", "--data-root", video_folder, "--out",
                         video_folder / "flo"), "is inside the input folder")
    flo = tmp_path / "flo"
    flo.mkdir()
    (flo / "keep.flo").write_bytes(b"x")
    _one_line_error(_cli("data", "flow", "-d", "video-folder", "--data-root", video_folder, "--out", flo),
                    "not an empty folder")
    assert _files(video_folder) == before and (flo / "keep.flo").read_bytes() == b"x"


def test_leaderboard_and_figures_replace_files_only_with_overwrite(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    table = tmp_path / "table.md"
    table.write_text("mine\n")
    _one_line_error(_cli("leaderboard", "--runs-dir", runs, "--out", table), "exists; pass --overwrite")
    assert table.read_text() == "mine\n"
    _one_line_error(_cli("leaderboard", "--runs-dir", runs, "--out", tmp_path), "is a folder, not a file")
    assert _cli("leaderboard", "--runs-dir", runs, "--out", table, "--overwrite").exit_code == 0


# -- 10. a file where a folder is expected, and the reverse ------------------------------------
def test_folders_that_are_files_give_one_line(video_folder, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    args = ["run", "-m", "cam", "-d", "video-folder", "--data-root", video_folder, "-q", *TINY]
    _one_line_error(_cli(*args, "--runs-dir", a_file), "--runs-dir")
    _one_line_error(_cli(*args, "--cache-dir", a_file), "--cache-dir")
    _one_line_error(_cli(*args, "--runs-dir", a_file / "runs"), "is a file, not a folder")
    _one_line_error(_cli("leaderboard", "--runs-dir", a_file), "is a file, not a folder")
    _one_line_error(_cli("figures", "--runs-dir", tmp_path, "--out", a_file), "is a file, not a folder")
    _one_line_error(_cli("data", "synth", "--out", a_file / "belt"), "is a file, not a folder")
    assert a_file.read_text() == "x"


# -- 2. every .pt file is read with weights_only=True -----------------------------------------
class _Payload:
    """Pickles to a call that creates a file when unpickled."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    payload = _Payload()
    payload.marker = str(marker)
    torch.save({"epoch": 0, "model": payload}, path)


@pytest.mark.slow
def test_pickled_payloads_are_refused_with_one_line(finished, tmp_path):
    data, runs, cache, _ = finished
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    (folder,) = [p for p in (copy / "classifiers").iterdir() if p.is_dir()]
    marker = tmp_path / "pwned"
    # an interrupted training's checkpoint: a plain run reads it to say how far it got
    (folder / "final.pt").unlink()
    _plant(folder / "checkpoint.pt", marker)
    line = _one_line_error(_cli(*_run_args(data, copy, cache)), "checkpoint.pt: refused to load")
    assert str(folder) in line
    _one_line_error(_cli(*_run_args(data, copy, cache), "--resume"), "checkpoint.pt: refused to load")
    # a finished classifier, read by export
    _plant(folder / "final.pt", marker)
    run_dir = next(p for p in copy.iterdir() if (p / "result.json").exists())
    _one_line_error(_cli("export", "--run", run_dir, "--cache-dir", cache, "--out", tmp_path / "x"),
                    "final.pt: refused to load")
    assert not marker.exists()


def test_checkpoint_rng_states_are_plain_and_restore_exactly():
    import random

    from wsbench import checkpoint

    random.seed(3)
    np.random.seed(4)
    np.random.normal()  # a cached Gaussian in NumPy's state
    states = checkpoint.rng_states()
    buffer = __import__("io").BytesIO()
    torch.save(states, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    expected = (random.random(), np.random.normal(), torch.rand(1).item())
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    checkpoint.set_rng_states(loaded)
    assert (random.random(), np.random.normal(), torch.rand(1).item()) == expected


# -- 4. atomic writes respect the umask ---------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path, mask):
    from wsbench.files import atomic_write_json

    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "record.json", {"a": 1})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "record.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~mask


@pytest.mark.slow
def test_run_records_checkpoints_and_caches_have_normal_permissions(finished, tmp_path):
    data, runs, cache, run_dir = finished
    (tmp_path / "plain").write_text("x")
    (tmp_path / "folder").mkdir()
    file_mode = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    dir_mode = stat.S_IMODE((tmp_path / "folder").stat().st_mode)
    (classifier,) = [p for p in (runs / "classifiers").iterdir() if p.is_dir()]
    for path in (run_dir / "config.json", run_dir / "result.json", classifier / "final.pt",
                 classifier / "checkpoint.pt", classifier / "train.json"):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    (prepared,) = [p for p in cache.rglob("meta.json")]
    assert stat.S_IMODE(prepared.parent.stat().st_mode) == dir_mode
    assert stat.S_IMODE((prepared.parent / "frames.npy").stat().st_mode) == file_mode


# -- 5. a copied or moved runs directory uses its own classifiers --------------------------------
@pytest.mark.slow
def test_copied_runs_dir_uses_its_own_classifier(finished, tmp_path):
    data, runs, cache, run_dir = finished
    result = json.loads((run_dir / "result.json").read_text())
    assert not Path(result["classifier"]["path"]).is_absolute()
    assert (runs / result["classifier"]["path"] / "final.pt").is_file()
    copy = tmp_path / "copy"
    shutil.copytree(runs, copy)
    (folder,) = [p for p in (copy / "classifiers").iterdir() if p.is_dir()]
    (folder / "final.pt").write_bytes(b"damaged in the copy only")
    _one_line_error(_cli("export", "--run", copy / run_dir.name, "--cache-dir", cache, "--out", tmp_path / "x"),
                    f"{folder / 'final.pt'}: not a PyTorch weights file")
    # a record written before paths became relative: an absolute path is used while it exists ...
    from wsbench.inference import _classifier_weights
    from wsbench.runs import RunRecord

    shutil.copy(runs / result["classifier"]["path"] / "final.pt", folder / "final.pt")
    record = RunRecord.load(copy / run_dir.name)
    record.result["classifier"]["path"] = str((runs / result["classifier"]["path"]).resolve())
    assert _classifier_weights(record) == (runs / result["classifier"]["path"]).resolve() / "final.pt"
    # ... and the classifier beside the run is found when it does not
    record.result["classifier"]["path"] = str(tmp_path / "gone" / "classifiers" / result["classifier"]["key"])
    assert _classifier_weights(record) == folder / "final.pt"


# -- 7. -q silences every progress bar ----------------------------------------------------------
@pytest.mark.slow
def test_quiet_silences_every_progress_bar(finished, tmp_path, monkeypatch):
    _, runs, _, run_dir = finished
    monkeypatch.delenv("WSBENCH_PROGRESS", raising=False)
    # a fresh cache: export builds the frame cache, whose bar -q must silence too
    result = _cli("export", "--run", run_dir, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "x", "-q",
                  "--split", "test")
    assert result.exit_code == 0, result.output
    assert "caching frames" not in result.stderr and "%|" not in result.stderr, result.stderr


def test_data_flow_quiet(video_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("WSBENCH_PROGRESS", raising=False)
    result = _cli("data", "flow", "-d", "video-folder", "--data-root", video_folder, "--out", tmp_path / "flo",
                  "--flow", "farneback", "-q")
    assert result.exit_code == 0, result.output
    assert "%|" not in result.stderr and "flow (" not in result.stderr


# -- 9. every image and video write is checked --------------------------------------------------
def test_failed_image_and_video_writes_are_errors(video_folder, tmp_path, monkeypatch):
    from wsbench.files import video_writer, write_image

    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)
    with pytest.raises(UserError, match="x.png: cannot write image"):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    result = _cli("data", "show", video_folder, "--out", tmp_path / "sheet.png")
    _one_line_error(result, "sheet.png: cannot write image")
    assert "contact sheet:" not in result.stdout

    class Closed:
        def __init__(self, *args):
            pass

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return False

    monkeypatch.setattr(cv2, "VideoWriter", Closed)
    with pytest.raises(UserError, match="o.avi: OpenCV cannot write"):
        video_writer(tmp_path / "o.avi", 10.0, (8, 8))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_data_show_into_a_read_only_folder(video_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_line_error(_cli("data", "show", video_folder, "--out", locked / "sheet.png"), "sheet.png")
    finally:
        locked.chmod(0o755)


# -- 8. a full or read-only disk ----------------------------------------------------------------
def _failing_fsync(code: int, when: str):
    real = os.fsync

    def fsync(fd: int) -> None:
        if when in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        real(fd)
    return fsync


@pytest.mark.slow
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_runs_dir(video_folder, tmp_path, monkeypatch, code):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    monkeypatch.setattr(os, "fsync", _failing_fsync(code, ".checkpoint.pt."))
    line = _one_line_error(_cli(*_run_args(video_folder, runs, cache)), "classifiers")
    assert ("no space left" if code == errno.ENOSPC else "read-only") in line
    assert not [p for p in runs.rglob("*") if ".tmp" in p.name]
    monkeypatch.setattr(os, "fsync", _failing_fsync(code, "config.json"))
    _one_line_error(_cli(*_run_args(video_folder, tmp_path / "runs2", cache)), str(tmp_path / "runs2"))
    assert not [p for p in (tmp_path / "runs2").rglob("*") if ".tmp" in p.name]


def test_mkdir_on_a_read_only_place_is_one_line(video_folder, tmp_path, monkeypatch):
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if "runs" in self.parts:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    _one_line_error(_cli(*_run_args(video_folder, tmp_path / "runs", tmp_path / "cache")), "read-only file system")


def _little_space(monkeypatch, free: int = 1000) -> None:
    import collections

    import wsbench.files.outputs

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(wsbench.files.outputs.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - free, free))


def test_full_cache_disk_is_one_line_naming_the_folder_and_the_space(video_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _little_space(monkeypatch)
    line = _one_line_error(_cli(*_run_args(video_folder, tmp_path / "runs", cache)), "not enough free space")
    assert str(cache) in line and "needs" in line and "1000 B free" in line
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]  # the temporary folder is gone


def test_full_disk_while_reserving_the_flow_cache(video_folder, tmp_path, monkeypatch):
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare

    data = prepare(create_dataset("video-folder", root=video_folder), (32, 32), tmp_path / "cache")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(UserError, match="not enough free space for the farneback flow cache: needs"):
        data.flows("farneback")
    assert not [p for p in data.path.iterdir() if p.name.startswith(".")]


# -- 6. images that declare more pixels than the limit --------------------------------------------
def _declaring(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header declares ``width`` × ``height`` pixels."""
    import zlib

    ok, buf = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR's CRC
    return bytes(data)


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    from wsbench.data.io import read_image, read_mask

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_declaring(16000, 16000))
    assert bomb.stat().st_size < 100
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a) or None)
    for read in (read_image, read_mask):
        with pytest.raises(UserError, match=r"bomb.png: declares 16000x16000 pixels \(256 megapixels\), above the "
                                            r"limit of 64 megapixels; set \$WSBENCH_MAX_IMAGE_PIXELS"):
            read(bomb)
    assert not decoded
    monkeypatch.undo()
    frame = tmp_path / "frame.jpg"
    cv2.imwrite(str(frame), np.zeros((40, 48, 3), np.uint8))
    monkeypatch.setenv("WSBENCH_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(UserError, match="declares 48x40 pixels"):
        read_image(frame)
    monkeypatch.setenv("WSBENCH_MAX_IMAGE_PIXELS", "1920")
    assert read_image(frame).shape == (40, 48, 3)
    monkeypatch.setenv("WSBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UserError, match="must be a positive whole number"):
        read_image(frame)


def test_video_frames_above_the_pixel_limit(tmp_path, monkeypatch):
    from wsbench.data.video import VideoFile

    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (48, 40))
    for _ in range(3):
        writer.write(np.zeros((40, 48, 3), np.uint8))
    writer.release()
    assert len(VideoFile(path)) == 3
    monkeypatch.setenv("WSBENCH_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(UserError, match="v.avi: declares 48x40 pixels"):
        VideoFile(path)


def test_image_size_is_bounded():
    from wsbench.recipes import Recipe

    for size in ((8, 8), (100000, 512), (512, 5000)):
        with pytest.raises(UserError, match="--image-size must be 16 to 4096 pixels a side"):
            Recipe(image_size=size)
    assert Recipe(image_size=(4096, 16)).image_size == (4096, 16)


def test_full_disk_while_generating_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "data" / "belt"
    line = _one_line_error(_cli("data", "synth", "--out", out, "--videos", "1", "--frames", "2", "--size", "32x32"),
                           "no space left on the device")
    assert f"{tmp_path / 'data'}:" in line
    assert not list((tmp_path / "data").iterdir())


@pytest.mark.slow
def test_segment_refuses_an_output_inside_the_run_and_a_silent_video_writer(finished, tmp_path, monkeypatch):
    _, runs, _, run_dir = finished
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(2):
        cv2.imwrite(str(frames / f"f{t}.png"), np.full((40, 48, 3), 60, np.uint8))
    _one_line_error(_cli("segment", "--run", run_dir, frames, "--out", run_dir / "seg", "-q"),
                    "is inside the input folder")
    assert not (run_dir / "seg").exists()

    class Silent:  # opens, then writes nothing (what OpenCV does on a full disk)
        def __init__(self, *args):
            pass

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return True

        def write(self, frame):
            pass

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Silent)
    _one_line_error(_cli("segment", "--run", run_dir, frames, "--out", tmp_path / "seg", "--overlay-video",
                         tmp_path / "o.avi", "-q"), "o.avi: OpenCV wrote no video")


def test_pretrained_folder_is_one_line(video_folder, tmp_path):
    _one_line_error(_cli("run", "-m", "cam", "-d", "video-folder", "--data-root", video_folder, "-q", *TINY,
                         "--pretrained", tmp_path), "is a folder, not a weights file")
