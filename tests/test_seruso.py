"""SERUSO / WS² in the authors' layout, precomputed .flo flows, Zenodo downloads, both protocols."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import stat
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import _frame
from wsbench.cli import cli
from wsbench.data import create_dataset
from wsbench.errors import UserError
from wsbench.evaluate import frame_iou, wsws_mask
from wsbench.flow import FlowFiles, read_flo, write_flo
from wsbench.maps import multiscale_maps, parse_scales

TINY = ["--recipe", "smoke"]
SIZE = (48, 40)
MOTION = (3.0, 0.0)  # the fixture's objects move 3 px to the right per frame


def write_seruso(root: Path, frames: int = 5, flows: bool = True, test_videos: int = 1) -> Path:
    """A tiny SERUSO tree under ``root/WS2`` (an extra top folder, as an archive may add)."""
    rng = np.random.default_rng(0)
    top = root / "WS2"
    folders = [(top / "train_val_dataset" / "training", top / "optical_flows" / "training", None, 2),
               (top / "train_val_dataset" / "validation", top / "optical_flows" / "validation", None, 1),
               (top / "test_set" / "images", top / "test_set" / "optical_flows", top / "test_set" / "masks",
                test_videos)]
    for images, flow_dir, masks, n_videos in folders:
        for label in ("before", "after"):
            for v in range(n_videos):
                vid = f"video_{v:03d}"
                for d in (images, flow_dir) + ((masks,) if masks else ()):
                    (d / label / vid).mkdir(parents=True, exist_ok=True)
                for t in range(frames):
                    frame, mask = _frame(rng, SIZE, t, illegal=label == "before")
                    name = f"frame_{t + 1:04d}"
                    cv2.imwrite(str(images / label / vid / f"{name}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    if masks:
                        cv2.imwrite(str(masks / label / vid / f"{name}.jpg"), mask)
                    if flows and t < frames - 1:  # at half resolution, to check the rescaling
                        flow = np.broadcast_to(np.array(MOTION, np.float32) / 2, (SIZE[1] // 2, SIZE[0] // 2, 2))
                        write_flo(flow_dir / label / vid / f"{name}.flo", flow)
    (top / "train_val_dataset" / "training" / "bg").mkdir()  # the optional third class is not read
    return root


@pytest.fixture
def seruso_tree(tmp_path) -> Path:
    return write_seruso(tmp_path / "data")


def test_reads_the_authors_layout_with_given_splits(seruso_tree):
    index = create_dataset("seruso", root=seruso_tree)
    counts = index.counts()
    assert counts["train"]["before"]["videos"] == 2 and counts["val"]["after"]["videos"] == 1
    assert counts["test"]["before"]["masked_frames"] == 5 and counts["train"]["before"]["masked_frames"] == 0
    video = index.split("test", "before")[0]
    assert video.id == "test/video_000" and video.frames.names[0] == "frame_0001"
    assert video.flow_files[0].parts[-5:] == ("test_set", "optical_flows", "before", "video_000", "frame_0001.flo")
    train = index.split("train", "after")[0]
    assert train.flow_files[0].parts[-6:-1] == ("WS2", "optical_flows", "training", "after", "video_000")
    assert create_dataset("ws2", root=seruso_tree).name == "ws2"


def test_val_split_is_carved_from_test_by_video(tmp_path):
    root = write_seruso(tmp_path / "data", test_videos=4)
    for kind in ("images", "masks"):  # video_002 becomes two runs, which must move together
        (root / "WS2" / "test_set" / kind / "before" / "video_002" / "frame_0003.jpg").unlink()
    index = create_dataset("seruso", root=root)
    val = [v for v in index.split("val") if v.id.startswith("test/")]
    test = index.split("test")
    folder = lambda v: v.key.split("#")[0]  # noqa: E731
    assert {folder(v) for v in val}.isdisjoint({folder(v) for v in test})
    assert {v.label for v in val} == {"before", "after"} and len({folder(v) for v in val}) == 2  # 1 of 4 per class
    assert all(v.has_masks for v in val) and any(v.label == "before" for v in test)
    assert [v.id for v in index.split("val") if v.id.startswith("validation/")]  # the given val stays val
    info = index.info["val_from_test"]
    assert info == {"fraction": 0.25, "seed": 0, "videos": [v.key for v in val]}
    assert info["videos"] == create_dataset("seruso", root=root).info["val_from_test"]["videos"]  # seeded
    other = [create_dataset("seruso", root=root, split_seed=s).info["val_from_test"]["videos"] for s in range(1, 6)]
    assert any(o != info["videos"] for o in other)
    half = create_dataset("ws2", root=root, val_from_test=0.5)
    assert len({folder(v) for v in half.split("val", "before") if v.id.startswith("test/")}) == 2
    assert len({folder(v) for v in half.split("test", "before")}) == 2
    given = create_dataset("seruso", root=root, val_from_test=0)
    assert not any(v.has_masks for v in given.split("val")) and given.info["val_from_test"]["videos"] == []
    with pytest.raises(UserError, match=r"val_from_test must be a number in \[0, 1\)"):
        create_dataset("seruso", root=root, val_from_test=1)


@pytest.mark.slow
def test_threshold_source_is_recorded_and_shown(tmp_path):
    root = write_seruso(tmp_path / "data", test_videos=2)
    runner = CliRunner()
    base = ["run", "--method", "cam", "--dataset", "seruso", "--data-root", str(root), "--runs-dir",
            str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "-q", *TINY]
    results = {}
    for name, extra in (("val", []), ("fixed", ["--dataset-option", "val_from_test=0"])):
        result = runner.invoke(cli, base + extra)
        assert result.exit_code == 0, result.output
        run_dir = max((p for p in (tmp_path / "runs").iterdir() if p.name != "classifiers"),
                      key=lambda p: p.stat().st_mtime_ns)
        results[name] = (json.loads((run_dir / "result.json").read_text()), result.output)
    res, output = results["val"]
    assert res["metrics"]["threshold_source"] == "val" and res["counts"]["val_frames"] == 5
    moved = res["config"]["dataset_info"]["val_from_test"]["videos"]
    assert len(moved) == 2 and moved == create_dataset("seruso", root=root).info["val_from_test"]["videos"]
    assert f"at threshold {res['metrics']['threshold']:.2f} chosen on val" in output
    res, output = results["fixed"]
    assert res["metrics"]["threshold_source"] == "fixed" and res["metrics"]["threshold"] == 0.5
    assert res["counts"]["val_frames"] == 0 and "at fixed threshold 0.50 (no val masks)" in output
    assert "chosen on val" not in output
    shutil.rmtree(next(p for p in (tmp_path / "runs").iterdir() if p.name != "classifiers"
                       and json.loads((p / "result.json").read_text())["metrics"]["threshold_source"] == "val"))
    table = runner.invoke(cli, ["leaderboard", "--runs-dir", str(tmp_path / "runs"), "--table", "all"])
    assert table.exit_code == 0, table.output
    assert "Comparison: illegal IoU (pooled) ×100 on test, fixed threshold 0.50 (no val masks)" in table.output
    assert "on or off, fixed threshold 0.50 (no val masks)" in table.output and "chosen on val" not in table.output


def test_jpeg_masks_are_binarised_at_half_range(seruso_tree):
    from wsbench.data.io import read_mask

    video = create_dataset("seruso", root=seruso_tree).split("test", "before")[0]
    raw = cv2.imread(str(video.masks[0]), cv2.IMREAD_GRAYSCALE)
    assert len(np.unique(raw)) > 2  # JPEG ringing: not a clean 0/255 image
    assert np.array_equal(read_mask(video.masks[0]), raw >= 128)


def test_gaps_split_a_video_and_other_layouts_get_one_line(seruso_tree, tmp_path):
    vdir = next((seruso_tree / "WS2" / "train_val_dataset" / "training" / "before").iterdir())
    (vdir / "frame_0003.jpg").unlink()
    ids = [v.id for v in create_dataset("seruso", root=seruso_tree).split("train", "before")]
    assert "training/video_000" in ids and "training/video_000#2" in ids
    (tmp_path / "other" / "before").mkdir(parents=True)
    with pytest.raises(UserError, match="train_val_dataset/ or test_set/.*train_val_dataset/.*test_set/"):
        create_dataset("seruso", root=tmp_path / "other")


def test_flow_files_resized_scaled_and_backward_negated(seruso_tree):
    index = create_dataset("seruso", root=seruso_tree)
    video = index.split("val", "before")[0]
    forward, backward = FlowFiles().video_flows(index, video, (10, 12))
    assert forward.shape == (5, 10, 12, 2)
    # written at half the frame size with half the motion; at 12x10 the motion is 3 * 12/48 px
    assert np.allclose(forward[:4, ..., 0], 3.0 * 12 / 48) and np.allclose(forward[:4, ..., 1], 0)
    assert np.allclose(forward[4], 0) and np.allclose(backward[0], 0)
    assert np.allclose(backward[1:], -forward[:-1])
    video.flow_files[2].unlink()
    with pytest.raises(UserError, match=r"frame_0003\.flo: flow file missing"):
        FlowFiles().video_flows(index, video, (10, 12))


@pytest.mark.slow
def test_tccam_runs_on_seruso_with_flow_files_and_without(seruso_tree, tmp_path):
    runner = CliRunner()
    args = ["run", "--method", "tccam", "--dataset", "seruso", "--data-root", str(seruso_tree),
            "--runs-dir", str(tmp_path / "runs"), "-q", *TINY]
    result = runner.invoke(cli, args + ["--flow", "files"])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "classifiers"]
    res = json.loads((run_dir / "result.json").read_text())
    assert res["metrics"]["iou_illegal"] is not None
    assert 0 <= res["metrics"]["iou_illegal_wsws"] <= 1 and res["counts"]["wsws_frames"] == 3  # triplet centres
    shutil.rmtree(seruso_tree / "WS2" / "optical_flows")
    shutil.rmtree(seruso_tree / "WS2" / "test_set" / "optical_flows")
    fresh = ["--runs-dir", str(tmp_path / "runs2"), "--cache-dir", str(tmp_path / "cache2")]  # no cached flows
    result = runner.invoke(cli, args + ["--flow", "files", *fresh])
    assert result.exit_code == 1 and "frame_0001.flo: flow file missing" in result.output
    result = runner.invoke(cli, args + ["--flow", "dis", *fresh, "--fuse-neighbours", "1", "--fuse-on", "raw",
                                        "--batching", "triplet"])  # the authors' POF-CAM training and inference
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in (tmp_path / "runs2").iterdir() if (p / "result.json").exists()]  # the failed one has none
    res = json.loads((run_dir / "result.json").read_text())
    assert res["fusion"] == {"neighbours": 1, "mode": "max", "warp": True, "causal": False, "on": "raw"}
    assert res["config"]["method_options"]["batching"] == "triplet" and 0 <= res["metrics"]["iou_illegal_wsws"] <= 1


def test_data_flow_writes_a_tree_that_files_reads_back(video_folder, tmp_path):
    out = tmp_path / "flo"
    result = CliRunner().invoke(cli, ["data", "flow", "--dataset", "video-folder", "--data-root", str(video_folder),
                                      "--out", str(out), "--flow", "farneback"])
    assert result.exit_code == 0, result.output
    assert (out / "before" / "vid0" / "frame_0000.flo").exists()
    assert not (out / "before" / "vid0" / "frame_0004.flo").exists()
    assert read_flo(out / "after" / "vid1" / "frame_0002.flo").shape == (40, 48, 2)
    index = create_dataset("video-folder", root=video_folder)
    forward, _ = FlowFiles(root=str(out)).video_flows(index, index.videos[0], (40, 48))
    assert np.abs(forward[:4]).max() > 0  # the rectangle moves
    with pytest.raises(UserError, match="no default place for .flo files"):
        FlowFiles().video_flows(index, index.videos[0], (10, 12))


# -- multi-scale / flip inference ---------------------------------------------------------------
class _Mirror:
    """A stand-in method whose map is the input's first channel, pooled 4x (B, H/4, W/4)."""

    target = "before"

    def maps(self, model, images):
        return torch.nn.functional.avg_pool2d(images[:, :1], 4)[:, 0].relu()


def test_multiscale_identity_and_flip_symmetry():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 48)
    method = _Mirror()
    assert torch.equal(multiscale_maps(method, None, x, (1.0,), False), method.maps(None, x))
    symmetric = x + x.flip(-1)
    out = multiscale_maps(method, None, symmetric, (0.5, 1.0, 2.0), True)
    assert out.shape == (2, 32, 48) and torch.allclose(out, out.flip(-1), atol=1e-6)  # input resolution
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(2))
    # the stand-in is flip-equivariant, so mirrored maps flipped back equal the plain ones
    plain = torch.nn.functional.interpolate(method.maps(None, x)[:, None], size=(32, 48), mode="bilinear")[:, 0]
    unflipped = multiscale_maps(method, None, x, (1.0,), True)
    assert torch.allclose(unflipped, plain / plain.flatten(1).amax(1).view(-1, 1, 1), atol=1e-6)
    assert not torch.allclose(unflipped, unflipped.flip(-1), atol=1e-3)
    assert parse_scales("0.2, 0.5,1,2,4,6") == (0.2, 0.5, 1.0, 2.0, 4.0, 6.0)
    with pytest.raises(ValueError):
        parse_scales("0,1")


class _RandomMaps:
    """A stand-in method whose maps are random, at 1/8 of the input size (fixed per input shape)."""

    target = "before"

    def maps(self, model, images):
        b, _, h, w = images.shape
        gen = torch.Generator().manual_seed(h * 1000 + w)
        return torch.rand(b, max(1, h // 8), max(1, w // 8), generator=gen)


def _authors_combination(method, images, scales, flip):
    """The authors' combination restated: every scale's (and mirror's) map enlarged to the input, summed,
    max-normalised."""
    from .test_fidelity import authors_sum

    total = authors_sum(lambda x: method.maps(None, x), images, scales, flip)
    return total / total.flatten(1).amax(1).view(-1, 1, 1)


def test_multiscale_matches_the_authors_combination_on_random_maps():
    x = torch.rand(2, 3, 48, 64)
    scales = (0.2, 0.5, 1.0, 2.0, 4.0, 6.0)
    ours = multiscale_maps(_RandomMaps(), None, x, scales, True)
    assert ours.shape == (2, 48, 64)
    assert torch.allclose(ours, _authors_combination(_RandomMaps(), x, scales, True), atol=1e-5)


class _CoarsePerfectCam:
    """A perfect but coarse CAM: the disc indicator (first channel) average-pooled at stride 32."""

    target = "before"

    def maps(self, model, images):
        return torch.nn.functional.avg_pool2d(images[:, :1], 32, ceil_mode=True)[:, 0]


def _best_iou(maps: torch.Tensor, gt: torch.Tensor) -> float:
    scores = torch.nn.functional.interpolate(maps[:, None], size=gt.shape[-2:], mode="bilinear")[:, 0]
    best = 0.0
    for t in torch.linspace(0.02, 0.98, 49):
        pred = scores > t
        best = max(best, float((pred & gt).sum() / (pred | gt).sum()))
    return best


def test_multiscale_beats_single_scale_on_a_coarse_perfect_cam():
    """25 discs, a stride-32 CAM that is right but coarse: larger scales add the detail (hand case)."""
    gt = torch.zeros(1, 320, 320, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(320), torch.arange(320), indexing="ij")
    for i in range(5):
        for j in range(5):
            gt[0] |= (yy - (32 + 64 * i)) ** 2 + (xx - (32 + 64 * j)) ** 2 <= 14 ** 2
    images = gt.float()[:, None].expand(1, 3, 320, 320)
    single = _best_iou(multiscale_maps(_CoarsePerfectCam(), None, images), gt)
    multi = _best_iou(multiscale_maps(_CoarsePerfectCam(), None, images, (0.2, 0.5, 1, 2, 4, 6), True), gt)
    assert multi > single + 0.15, (single, multi)


def test_wsws_mask_and_frame_iou():
    before = np.array([[0.9, 0.1], [0.5, 0.0]])
    after = np.array([[0.2, 0.8], [0.5, 0.0]])
    mask = wsws_mask({"before": before, "after": after})
    assert mask.tolist() == [[True, False], [False, False]]  # ties go to after, as in the authors' code
    mask3 = wsws_mask({"before": before, "after": after, "background": np.array([[1.0, 0.0], [0.0, 0.0]])})
    assert not mask3[0, 0]
    assert frame_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    assert frame_iou(mask, np.array([[True, True], [False, False]])) == 0.5


# -- wsbench data fetch against a local server --------------------------------------------------
def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("WS2/train_val_dataset/readme.txt", "x" * 5000)
        archive.writestr("WS2/test_set/readme.txt", "y" * 3000)
    return buffer.getvalue()


class _Server:
    """A fake Zenodo on 127.0.0.1: one record, one zip, byte ranges honoured, requests logged."""

    def __init__(self, payload: bytes, md5: str | None = None, restricted: bool = False,
                 files: Callable[[str], Any] | None = None, blobs: dict[str, bytes] | None = None) -> None:
        """``files(base)``: the record's ``files`` instead of one WS2.zip; ``blobs``: more files served
        at ``/files/<path>``."""
        self.payload, self.requests = payload, []
        server = self
        blobs = blobs or {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path == "/api/records/14793518":
                    base = f"http://127.0.0.1:{self.server.server_address[1]}"
                    listed = files(base) if files else None
                    access = "restricted" if restricted else "open"
                    body = json.dumps({"id": 14793518, "metadata": {"access_right": access},
                                       "files": listed if files else [] if restricted else [
                                           {"key": "WS2.zip", "size": len(payload),
                                            "checksum": "md5:" + (md5 or hashlib.md5(payload).hexdigest()),
                                            "links": {"self": f"{base}/files/WS2.zip"}}]}).encode()
                    self._send(200, body, {})
                elif self.path[len("/files/"):] in blobs:
                    self._send(200, blobs[self.path[len("/files/"):]], {})
                elif self.path == "/files/WS2.zip":
                    start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                    headers = {"Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}"} if start else {}
                    self._send(206 if start else 200, payload[start:], headers)
                else:
                    self._send(404, b"not found", {})

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zenodo(monkeypatch):
    servers = []

    def start(**kwargs):
        server = _Server(_zip_bytes(), **kwargs)
        servers.append(server)
        monkeypatch.setenv("WSBENCH_ZENODO_URL", server.url)
        return server

    yield start
    for server in servers:
        server.close()


def test_fetch_downloads_verifies_and_extracts(zenodo, tmp_path):
    server = zenodo()
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert f"--dataset ws2 --data-root {tmp_path / 'ws2'}" in result.output
    assert (tmp_path / "ws2" / "WS2" / "train_val_dataset" / "readme.txt").read_text() == "x" * 5000
    assert not (tmp_path / ".wsbench-download").exists() and ("/files/WS2.zip", None) in server.requests


def test_fetch_resumes_a_partial_download(zenodo, tmp_path):
    from wsbench.fetch import download_dir

    server = zenodo()
    part = download_dir(tmp_path, "ws2") / "WS2.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(server.payload[:1000])
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert ("/files/WS2.zip", "bytes=1000-") in server.requests
    assert (tmp_path / "ws2" / "WS2" / "test_set" / "readme.txt").read_text() == "y" * 3000


def test_fetch_bad_checksum_extracts_nothing(zenodo, tmp_path):
    zenodo(md5="0" * 32)
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1 and "checksum mismatch" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ws2").exists()
    assert not any(p.name.startswith(".ws2.extracting") for p in tmp_path.iterdir())


def test_fetch_restricted_and_unreachable(zenodo, tmp_path, monkeypatch):
    zenodo(restricted=True)
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1 and "Request access" in result.output
    monkeypatch.setenv("WSBENCH_ZENODO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1 and "cannot reach" in result.output and len(result.output.strip().splitlines()) == 1


def _entry(base: str, key: str, body: bytes, **changes: Any) -> dict[str, Any]:
    entry = {"key": key, "size": len(body), "checksum": "md5:" + hashlib.md5(body).hexdigest(),
             "links": {"self": f"{base}/files/{key}"}}
    return {**entry, **changes}


def test_fetch_keeps_the_keys_folders(zenodo, tmp_path):
    """``a/data.zip`` and ``b/data.zip`` are two files: each lands in its own folder."""
    zips = {}
    for folder in ("a", "b"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("inside.txt", f"from {folder}")
        zips[f"{folder}/data.zip"] = buffer.getvalue()
    blobs = {**zips, "notes/readme.txt": b"plain file"}
    zenodo(files=lambda base: [_entry(base, key, body) for key, body in blobs.items()], blobs=blobs)
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "ws2"
    assert (root / "a" / "inside.txt").read_text() == "from a" and (root / "b" / "inside.txt").read_text() == "from b"
    assert (root / "notes" / "readme.txt").read_bytes() == b"plain file"
    mode = stat.S_IMODE(root.stat().st_mode)
    (tmp_path / "plain").mkdir()
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)  # not mkdtemp's 0700


@pytest.mark.parametrize("files, expect", [
    (lambda base: [_entry(base, "../evil.zip", b"x")], "'../evil.zip' is not a relative path inside"),
    (lambda base: [_entry(base, "/etc/evil", b"x")], "'/etc/evil' is not a relative path inside"),
    (lambda base: [_entry(base, "a/../../evil", b"x")], "is not a relative path inside"),
    (lambda base: [_entry(base, "x.zip", b"x", links={"self": "file:///etc/passwd"})], "only http(s) links"),
    (lambda base: [_entry(base, "x.zip", b"x", links={"self": "ftp://example.org/x.zip"})], "only http(s) links"),
    (lambda base: ["x.zip"], "files entry 0 is a str, not an object"),
    (lambda base: [_entry(base, "x.zip", b"x", size="12")], "size of file 'x.zip' is '12', not a number"),
    (lambda base: [_entry(base, "x.zip", b"x", size=True)], "not a number of bytes"),
    (lambda base: {"entries": 7}, "'files' is a int, not a list"),
    (lambda base: [_entry(base, "a/x.zip", b"x"), _entry(base, "a//x.zip", b"x")], "two files entries have"),
])
def test_fetch_refuses_records_of_another_shape(zenodo, tmp_path, files, expect):
    zenodo(files=files)
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path / "out"), "-q"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and expect in lines[0], result.output
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "ws2").exists()


def test_fetch_refuses_a_base_url_that_is_not_http(tmp_path, monkeypatch):
    monkeypatch.setenv("WSBENCH_ZENODO_URL", "file:///etc")
    result = CliRunner().invoke(cli, ["data", "fetch", "ws2", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1 and "only http(s) links" in result.output


def test_seruso_specs_take_the_data_root_from_the_command_line(tmp_path):
    from wsbench.suite import _specs, load_spec

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    wsws = load_spec(root / "seruso-wsws.toml")
    (run, spec), *_ = list(_specs(wsws, [0], {"data_roots": {"seruso": str(tmp_path)}}))
    assert spec.data_root == str(tmp_path) and spec.cam_scales == (0.2, 0.5, 1.0, 2.0, 4.0, 6.0) and spec.cam_flip
    assert spec.recipe["background_removal"] is False and spec.recipe["output_stride"] == 32
    (_, puzzle), = [(r, s) for r, s in _specs(wsws, [0], {}) if s.method == "puzzlecam"]
    assert puzzle.method_options == {"alpha_max": 2.0, "weight_ramp": "constant"}
    (_, pof), = [(r, s) for r, s in _specs(wsws, [0], {"data_roots": {"seruso": str(tmp_path)}}) if s.method == "tccam"]
    assert pof.method_options == {"batching": "triplet", "alpha_max": 2.0, "beta_max": 6.0, "weight_ramp": "constant"}
    assert pof.recipe["batch_size"] == 96  # 32 triplets
    assert (pof.fuse_neighbours, pof.fuse_mode, pof.fuse_on) == (1, "max", "raw") and pof.label == "POF-CAM"
    paper = load_spec(root / "seruso-paper.toml")
    (_, spec), *_ = list(_specs(paper, [0], {}))
    assert spec.data_root is None and spec.recipe["background_removal"] is True and spec.cam_scales == (1.0,)
    result = CliRunner().invoke(cli, ["suite", str(root / "seruso-paper.toml"), "--data-root", "nonsense"])
    assert result.exit_code == 2 and "DATASET=PATH" in result.output


# -- the authors' POF-CAM inference: fusion on raw maps -----------------------------------------
def _authors_lateral(raw: torch.Tensor, shift: int) -> torch.Tensor:
    """POF-CAM's inference restated on a video of raw maps (T, h, w) whose content moves ``shift``
    px to the right per frame: max(warped t−1, t, warped t+1), zero outside the frame, / (max + 1e-5)."""
    out = []
    for t in range(len(raw)):
        stack = [raw[t]]
        if t > 0:  # frame t's pixel x was at x − shift in frame t−1
            left = torch.zeros_like(raw[t])
            left[:, shift:] = raw[t - 1][:, :-shift]
            stack.append(left)
        if t < len(raw) - 1:  # and will be at x + shift in frame t+1
            right = torch.zeros_like(raw[t])
            right[:, :-shift] = raw[t + 1][:, shift:]
            stack.append(right)
        fused = torch.stack(stack).amax(0)
        out.append(fused / (fused.max() + 1e-5))
    return torch.stack(out)


def test_raw_fusion_matches_the_authors_formula():
    from wsbench.maps import fuse_maps
    from wsbench.methods import Fusion

    torch.manual_seed(0)
    t, h, w, shift = 5, 6, 7, 2
    raw = torch.rand(t, h, w) * torch.tensor([1.0, 3.0, 0.5, 2.0, 8.0])[:, None, None]  # frames of unequal scale
    to_next = torch.zeros(t, 2, h, w)
    to_next[:, 0] = shift  # u: x in frame t is x + shift in frame t+1
    fused = fuse_maps(raw, to_next, -to_next, Fusion(1, "max", on="raw"))
    assert torch.allclose(fused, _authors_lateral(raw, shift), atol=1e-6)
    normalised = raw / (raw.flatten(1).amax(1).view(-1, 1, 1) + 1e-5)
    on_maps = fuse_maps(normalised, to_next, -to_next, Fusion(1, "max"))
    assert not torch.allclose(on_maps, fused, atol=1e-2)  # fusing normalised maps is not the same


def test_raw_fusion_hand_counted():
    from wsbench.maps import fuse_maps
    from wsbench.methods import Fusion

    raw = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]], [[0.0, 0.0, 4.0]]])
    fused = fuse_maps(raw, None, None, Fusion(1, "max", warp=False, on="raw"))
    # frame 0: max(1 0 0, 0 2 0) = 1 2 0, / 2; frame 1: 1 2 4, / 4; frame 2: 0 2 4, / 4
    expected = torch.tensor([[[0.5, 1.0, 0.0]], [[0.25, 0.5, 1.0]], [[0.0, 0.5, 1.0]]])
    assert torch.allclose(fused, expected, atol=1e-4)
    on_maps = fuse_maps(raw / raw.flatten(1).amax(1).view(-1, 1, 1), None, None, Fusion(1, "max", warp=False))
    assert on_maps[1].tolist() == [[1.0, 1.0, 1.0]]  # per-frame normalised maps would all be 1


def test_raw_maps_hook_multiscale_and_refusals(seruso_tree):
    from wsbench.methods import Fusion, create_method, has_raw_maps
    from wsbench.model import build_model, cam_from_class_maps
    from wsbench.pipeline import RunSpec, resolve
    from wsbench.recipes import named_recipe
    from wsbench.report import column_label

    torch.manual_seed(0)
    model = build_model(named_recipe("smoke").recipe(),
                        ("before", "after")).eval()
    x = torch.randn(2, 3, 32, 32)
    cam = create_method("tccam")
    with torch.no_grad():
        raw = cam.raw_maps(model, x)
        class_maps = model(x)
        assert torch.equal(raw, class_maps[:, model.class_index("before")].relu()) and raw.max() > 1e-3
        assert torch.allclose(cam.maps(model, x), cam_from_class_maps(class_maps, model.class_index("before")))
        summed = multiscale_maps(cam, model, x, (1.0, 0.5), True, raw=True)  # summed, not normalised
        def up(m):  # every scale's map at the input resolution, as the authors sum them
            return torch.nn.functional.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear")[:, 0]

        small = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", antialias=True)
        expected = (up(raw) + up(cam.raw_maps(model, x.flip(-1)).flip(-1)) + up(cam.raw_maps(model, small))
                    + up(cam.raw_maps(model, small.flip(-1)).flip(-1)))
        assert torch.allclose(summed, expected, atol=1e-6) and summed.amax() < 0.5  # (the normalised sum has max 1)
        assert torch.equal(multiscale_maps(cam, model, x, raw=True), raw)
    assert has_raw_maps(cam) and not has_raw_maps(create_method("gradcam")) and not has_raw_maps(create_method("f2f"))
    spec = dict(method="tccam", dataset="seruso", data_root=str(seruso_tree), fuse_neighbours=1)
    on_raw, on_maps = resolve(RunSpec(**spec, fuse_on="raw")), resolve(RunSpec(**spec))
    assert on_raw.fusion == Fusion(1, "max", on="raw") and on_raw.config["fusion"]["on"] == "raw"
    assert "on" not in on_maps.config["fusion"] and on_raw.config["config_hash"] != on_maps.config["config_hash"]
    with pytest.raises(UserError, match="'gradcam' has its own maps and no raw form"):
        resolve(RunSpec(**dict(spec, method="gradcam"), fuse_on="raw"))
    assert column_label({"method": "tccam", "config": on_raw.config}).endswith("--fuse 1 max raw")
    with pytest.raises(UserError, match="--fuse-on needs --fuse-neighbours"):
        resolve(RunSpec(**dict(spec, fuse_neighbours=None), fuse_on="raw"))
