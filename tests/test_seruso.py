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
from pathlib import Path
from typing import Any, Callable

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
from wsbench.multiscale import multiscale_maps, parse_scales

TINY = ["--backbone", "wsbench_resnet_tiny", "--output-stride", "8", "--image-size", "32", "--epochs", "1",
        "--batch-size", "8"]
SIZE = (48, 40)
MOTION = (3.0, 0.0)  # the fixture's objects move 3 px to the right per frame


def write_seruso(root: Path, frames: int = 5, flows: bool = True) -> Path:
    """A tiny SERUSO tree under ``root/WS2`` (an extra top folder, as an archive may add)."""
    rng = np.random.default_rng(0)
    top = root / "WS2"
    folders = [(top / "train_val_dataset" / "training", top / "optical_flows" / "training", None, 2),
               (top / "train_val_dataset" / "validation", top / "optical_flows" / "validation", None, 1),
               (top / "test_set" / "images", top / "test_set" / "optical_flows", top / "test_set" / "masks", 1)]
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
    result = runner.invoke(cli, args + ["--flow", "dis", *fresh])
    assert result.exit_code == 0, result.output


def test_data_flow_writes_a_tree_that_files_reads_back(video_folder, tmp_path):
    out = tmp_path / "flo"
    result = CliRunner().invoke(cli, ["data", "flow", "--dataset", "video-folder", "--data-root", str(video_folder),
                                      "--out", str(out), "--flow", "farneback"])
    assert result.exit_code == 0, result.output
    assert (out / "before" / "vid0" / "frame_0000.flo").exists() and not (out / "before" / "vid0" / "frame_0004.flo").exists()
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
    assert out.shape == (2, 8, 12) and torch.allclose(out, out.flip(-1), atol=1e-6)
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(2))
    # the stand-in is flip-equivariant, so mirrored maps flipped back equal the plain ones
    plain = method.maps(None, x)
    unflipped = multiscale_maps(method, None, x, (1.0,), True)
    assert torch.allclose(unflipped, plain / plain.flatten(1).amax(1).view(-1, 1, 1), atol=1e-6)
    assert not torch.allclose(unflipped, unflipped.flip(-1), atol=1e-3)
    assert parse_scales("0.2, 0.5,1,2,4,6") == (0.2, 0.5, 1.0, 2.0, 4.0, 6.0)
    with pytest.raises(ValueError):
        parse_scales("0,1")


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
                    body = json.dumps({"id": 14793518, "metadata": {"access_right": "restricted" if restricted else "open"},
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
    assert spec.recipe["background_removal"] is False and spec.recipe["weight_ramp"] == "constant"
    assert (spec.recipe["alpha_max"], spec.recipe["beta_max"], spec.recipe["output_stride"]) == (2.0, 6.0, 32)
    paper = load_spec(root / "seruso-paper.toml")
    (_, spec), *_ = list(_specs(paper, [0], {}))
    assert spec.data_root is None and spec.recipe["background_removal"] is True and spec.cam_scales == (1.0,)
    result = CliRunner().invoke(cli, ["suite", str(root / "seruso-paper.toml"), "--data-root", "nonsense"])
    assert result.exit_code == 2 and "DATASET=PATH" in result.output
