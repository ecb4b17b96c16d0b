"""Trustworthy under attack: data identity, duplicate runs, degenerate data, hostile files and specs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.errors import UserError

from .conftest import write_video_folder


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="wsbench")


# -- flow files -------------------------------------------------------------------------------
def test_data_flow_keeps_symlinked_frames_in_their_own_video(tmp_path):
    data = write_video_folder(tmp_path / "data")
    linked = data / "before" / "vid1" / "frame_0002.png"
    linked.unlink()
    linked.symlink_to(data / "before" / "vid0" / "frame_0002.png")
    out = tmp_path / "flo"
    result = _invoke(["data", "flow", "-d", "video-folder", "--data-root", data, "--out", out])
    assert result.exit_code == 0, result.output
    for video in ("vid0", "vid1"):  # every video gets its own four files, none written into another
        assert sorted(p.name for p in (out / "before" / video).iterdir()) == [f"frame_{t:04d}.flo" for t in range(4)]


def test_unknown_flow_values_become_invalid_pixels_with_a_warning(tmp_path):
    from wsbench.data import create_dataset
    from wsbench.flow import FlowFiles, flo_path, read_flo, warp, write_flo

    data = write_video_folder(tmp_path / "data", videos=2, frames=3)
    index = create_dataset("video-folder", root=data)
    video = index.videos[0]
    root = tmp_path / "flo"
    for n in range(len(video) - 1):
        path = flo_path(root, index, video, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        flow = np.zeros((40, 48, 2), np.float32)
        if n == 0:
            flow[5, 7] = (np.nan, 0.0)
            flow[30, 40] = (0.0, 1e9)  # Middlebury's "unknown"
            flow[20, 20] = (-np.inf, 2.0)
        write_flo(path, flow)
    raw = read_flo(flo_path(root, index, video, 0))
    assert np.isnan(raw).any(axis=-1).sum() == 3 and np.isnan(raw[30, 40]).all()
    forward, backward = FlowFiles(str(root)).video_flows(index, video, (40, 48))
    assert np.isnan(forward[0, 5, 7]).all() and np.isfinite(forward[1]).all() and np.isnan(backward[1, 5, 7]).all()
    # the warp's validity: no sample (0) and valid = 0 exactly there
    maps = torch.ones(1, 1, 40, 48)
    warped, valid = warp(maps, torch.from_numpy(forward[0]).permute(2, 0, 1)[None])
    assert valid[0, 0, 5, 7] == 0 and valid[0, 0, 30, 40] == 0 and valid[0, 0, 0, 0] == 1
    assert torch.isfinite(warped).all()
    # the flow cache counts them once for the data set; the other videos lack files, so give them some
    from wsbench.data.cache import prepare

    for other in index.videos[1:]:
        for n in range(len(other) - 1):
            path = flo_path(root, index, other, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.zeros((40, 48, 2), np.float32))
    prepared = prepare(index, (32, 32), tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"flow 'files': \d+ flow vector\(s\) in 1 video\(s\) \(e\.g\. "
                                         r"before/vid0\) are unknown"):
        cached = prepared.flows("files", root=str(root))
    assert np.isnan(cached[0, 0]).any() and np.isnan(cached[1, 1]).any() and not np.isnan(cached[2:]).any()


# -- frames and masks: one orientation, unambiguous order ---------------------------------------
def _jpeg_with_orientation(path: Path, image: np.ndarray, orientation: int) -> None:
    """A JPEG whose APP1 segment carries an EXIF orientation tag (0x0112), written by hand."""
    import cv2

    data = cv2.imencode(".jpg", image)[1].tobytes()
    ifd = (b"\x01\x00" + b"\x12\x01" + b"\x03\x00" + b"\x01\x00\x00\x00"
           + orientation.to_bytes(2, "little") + b"\x00\x00" + b"\x00\x00\x00\x00")
    exif = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + ifd
    path.write_bytes(data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:])


def test_frames_and_masks_share_one_orientation_policy(tmp_path):
    from wsbench.data.io import read_image, read_mask

    image = np.zeros((40, 48, 3), np.uint8)
    image[:10, :20] = 255  # top-left block: where it lands shows any rotation
    path = tmp_path / "rotated.jpg"
    _jpeg_with_orientation(path, image, 6)  # "rotate 90° clockwise to display"
    frame, mask = read_image(path), read_mask(path)
    assert frame.shape == (40, 48, 3) and mask.shape == (40, 48)
    assert frame[2, 2].min() > 200 and mask[2, 2] and not mask[35, 2]
    assert ((frame.max(axis=2) >= 128) == mask).mean() > 0.99


def test_frame_names_differing_only_in_leading_zeros_are_ambiguous(tmp_path):
    from wsbench.data.io import image_files, natural_key

    assert natural_key("f_01") == natural_key("f_1") == natural_key("f_001")
    ordered = sorted(["f_01", "f_1", "f_001", "f_0"], key=natural_key)
    assert ordered == ["f_0", "f_01", "f_1", "f_001"]  # ties keep the given order
    data = write_video_folder(tmp_path / "data", name=lambda t: f"f_{t}")
    (data / "after" / "vid1" / "f_3.png").rename(data / "after" / "vid1" / "f_03.png")
    assert len(image_files(data / "after" / "vid1")) == 5
    (data / "after" / "vid1" / "f_4.png").rename(data / "after" / "vid1" / "f_004.png")
    (data / "after" / "vid1" / "f_1.png").rename(data / "after" / "vid1" / "F_4.png")
    with pytest.raises(UserError, match=r"after/vid1: frame names '(f_004|F_4)\.png' and '(f_004|F_4)\.png' differ "
                                        r"only in leading zeros or case"):
        image_files(data / "after" / "vid1")


# -- leaderboard: one sample per configuration and seed, references per data set -----------------
def test_a_rerun_of_the_same_configuration_and_seed_is_one_sample(tmp_path):
    from wsbench.report import ablation, background, comparison, latest_runs
    from wsbench.runs import iter_runs

    from .test_report import fake_run

    runs = tmp_path / "runs"
    reruns = []
    for method in ("cam", "gradcam"):  # gradcam: the standard classifier of the background table
        fake_run(runs, method, 0, 0.20)
        fake_run(runs, method, 1, 0.30)
        reruns.append(fake_run(runs, method, 1, 0.50))  # the same configuration and seed again
        os.utime(reruns[-1].path / "result.json", ns=(2**62, 2**62))  # finished last, whatever its id says
    kept, ignored = latest_runs(iter_runs(runs))
    assert ignored == 2 and {r.run_id for r in reruns} <= {r.run_id for r in kept} and len(kept) == 4
    table = comparison(iter_runs(runs))
    cell = dict(zip(table.columns, table.rows[0][1], strict=True))["CAM"]
    assert cell.n == 2 and cell.mean == pytest.approx(35.0) and "over 2 seeds" in table.caption
    assert any("2 re-run(s)" in note for note in table.footnotes)
    assert any("2 re-run(s)" in note for note in ablation(iter_runs(runs)).footnotes)
    assert any("2 re-run(s)" in note for note in background(iter_runs(runs)).footnotes)


def test_all_foreground_reference_is_per_data_set_identity(tmp_path):
    from wsbench.files import atomic_write_json
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    from .test_report import fake_run

    runs = tmp_path / "runs"
    for root, reference in (("/data/a", 0.1), ("/data/b", 0.4)):
        record = fake_run(runs, "cam", 0, 0.3, dataset="video-folder")
        for name in ("config.json", "result.json"):  # the same run on another data root
            doc = json.loads((record.path / name).read_text())
            config = doc.get("config", doc)
            config["data_root"] = root
            if name == "result.json":
                doc["baselines"]["all_foreground"]["iou_illegal"] = reference
            atomic_write_json(record.path / name, doc)
    table = comparison(iter_runs(runs))
    rows = {name: dict(zip(table.columns, cells, strict=True)) for name, cells in table.rows}
    assert set(rows) == {"video-folder [data_root=/data/a]", "video-folder [data_root=/data/b]"}
    assert rows["video-folder [data_root=/data/a]"]["all-foreground (reference)"].mean == pytest.approx(10)
    assert rows["video-folder [data_root=/data/b]"]["all-foreground (reference)"].mean == pytest.approx(40)
    assert table.columns == ["CAM", "all-foreground (reference)", "foreground recall (ceiling)"]


# -- data identity: content fingerprints ---------------------------------------------------------
TINY_RECIPE = """
[recipe]
name = "smoke"
"""


@pytest.mark.slow
def test_suite_reruns_when_the_data_under_the_same_path_changed(tmp_path, monkeypatch):
    import cv2

    data = write_video_folder(tmp_path / "data")
    spec = tmp_path / "tiny.toml"
    spec.write_text(f'datasets = ["video-folder"]\n{TINY_RECIPE}\n[[runs]]\nmethod = "cam"\n')
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)
    suite = lambda root: _invoke(["suite", spec, "--runs-dir", runs, "-q", "--data-root", f"video-folder={root}"])  # noqa: E731
    first = suite(data)
    assert first.exit_code == 0 and ": running" in first.output, first.output
    again = suite("./data")  # the same data set by a relative path
    assert again.exit_code == 0 and "done before" in again.output, again.output
    frame = data / "before" / "vid0" / "frame_0001.png"
    cv2.imwrite(str(frame), np.full((40, 48, 3), 7, np.uint8))
    os.utime(frame, ns=(1, 1))
    changed = suite(data)
    assert changed.exit_code == 0 and ": running" in changed.output and "done before" not in changed.output
    configs = [json.loads(p.read_text()) for p in runs.glob("*/config.json")]
    assert len({c["data_fingerprint"] for c in configs}) == 2 and len({c["config_hash"] for c in configs}) == 1
    assert len(list(runs.glob("classifiers/*/final.pt"))) == 2  # the changed frames train a new classifier


def test_flow_cache_and_classifier_follow_the_flo_contents(tmp_path):
    from wsbench.classifiers import classifier_key
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.flow import flo_path, write_flo
    from wsbench.methods import create_method
    from wsbench.pipeline import data_fingerprint
    from wsbench.recipes import Recipe

    data = write_video_folder(tmp_path / "data", videos=2, frames=3)
    index = create_dataset("video-folder", root=data)
    root = tmp_path / "flo"
    for video in index.videos:
        for n in range(len(video) - 1):
            path = flo_path(root, index, video, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.ones((40, 48, 2), np.float32))
    prepared = prepare(index, (32, 32), tmp_path / "cache")
    recipe = Recipe(image_size=(32, 32), flow="files", flow_root=str(root))
    tccam = create_method("tccam")
    before = (np.asarray(prepared.flows("files", root=str(root))).copy(), classifier_key(tccam, recipe, prepared, 0),
              data_fingerprint(index, recipe))
    changed = flo_path(root, index, index.videos[0], 0)
    write_flo(changed, np.full((40, 48, 2), 3.0, np.float32))  # same path, new contents
    os.utime(changed, ns=(10**18, 10**18))
    after = (np.asarray(prepared.flows("files", root=str(root))), classifier_key(tccam, recipe, prepared, 0),
             data_fingerprint(index, recipe))
    assert not np.array_equal(before[0], after[0])  # not the stale cached flows
    assert before[1] != after[1] and before[2] != after[2]
    # flow-free classifiers do not depend on flow files
    cam = create_method("cam")
    assert classifier_key(cam, recipe, prepared, 0) == classifier_key(cam, Recipe(image_size=(32, 32)), prepared, 0)


def test_data_fingerprint_resolves_the_root_and_sees_masks(tmp_path, monkeypatch):
    from wsbench.data import create_dataset

    data = write_video_folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    absolute, relative = create_dataset("video-folder", root=data), create_dataset("video-folder", root="./data")
    frames, everything = absolute.fingerprint(), absolute.fingerprint(masks=True)
    assert relative.fingerprint(masks=True) == everything
    mask = data / "masks" / "before" / "vid0" / "frame_0000.png"
    os.utime(mask, ns=(5, 5))  # edited in place
    assert absolute.fingerprint() == frames  # caches and classifiers do not read masks
    assert absolute.fingerprint(masks=True) != everything  # scores do


# -- options at their limits ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_largest_seed_trains(tmp_path):
    data = write_video_folder(tmp_path / "data")
    result = _invoke(["run", "-m", "cam", "-d", "video-folder", "--data-root", data, "--seed", 2**64 - 1, "-q",
                      "--recipe", "smoke", "--runs-dir", tmp_path / "runs"])
    assert result.exit_code == 0, result.output


def test_schema_names_the_key_and_accepts_what_it_describes(tmp_path):
    from wsbench.schema import Int, ListOf, Number, Optional, Record, Str, load_json

    schema = Record({"a": ListOf(Int(0), length=2), "b": Optional(Number(finite=True)), "c": Str()}, required=("c",))
    assert schema.check({"a": [1, 2], "b": None, "c": "x"}, "f") == {"a": [1, 2], "b": None, "c": "x"}
    for doc, message in (({"a": [1, True], "c": "x"}, r"f: a\[1\]: expected an integer >= 0, got a boolean"),
                         ({"b": float("nan"), "c": "x"}, "f: b: expected a finite number"),
                         ({"a": [1, 2]}, "f: missing key 'c'"),
                         ({"c": "x", "d": 1}, r"f: d: unknown key \(allowed: a, b, c\)")):
        with pytest.raises(UserError, match=message):
            schema.check(doc, "f")
    path = tmp_path / "x.json"
    path.write_bytes(b'{"c": "\xff"}')
    with pytest.raises(UserError, match="is not UTF-8"):
        load_json(path, schema, "test")


def test_records_without_a_data_fingerprint_never_count_as_done(tmp_path):
    from wsbench.pipeline import same_run
    from wsbench.runs import RunRecord

    config = {"config_hash": "abc", "data_fingerprint": "f1"}
    assert same_run(RunRecord(tmp_path, dict(config)), config)
    assert not same_run(RunRecord(tmp_path, {"config_hash": "abc"}), config)  # made before fingerprints
    assert not same_run(RunRecord(tmp_path, {"config_hash": "abc", "data_fingerprint": "f0"}), config)


def test_dataset_option_nested_too_deeply_is_one_line():
    result = _invoke(["run", "-m", "cam", "-d", "video-folder", "--dataset-option", "k=" + "[" * 100_000])
    assert result.exit_code == 2 and "nested too deeply" in result.output and "Traceback" not in result.output


def test_runs_on_data_changed_in_between_are_another_row(tmp_path):
    from wsbench.files import atomic_write_json
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    from .test_report import fake_run

    runs = tmp_path / "runs"
    for method, fingerprint in (("cam", "aaaa"), ("gradcam", "bbbb")):
        record = fake_run(runs, method, 0, 0.3)
        for name in ("config.json", "result.json"):
            doc = json.loads((record.path / name).read_text())
            doc.get("config", doc)["data_fingerprint"] = fingerprint
            atomic_write_json(record.path / name, doc)
    rows = [name for name, _ in comparison(iter_runs(runs)).rows]
    assert rows == ["synthetic-belt [data_content=aaaa]", "synthetic-belt [data_content=bbbb]"]


def _set_config(record, **values):
    from wsbench.files import atomic_write_json

    for name in ("config.json", "result.json"):
        doc = json.loads((record.path / name).read_text())
        doc.get("config", doc).update(values)
        atomic_write_json(record.path / name, doc)


def test_split_seeds_pool_in_one_row_and_changed_data_is_never_a_rerun(tmp_path):
    """The split is not part of a data set's identity (split seeds are samples of one cell), its files are:
    the same configuration and seed on changed data is another sample in another row, not a re-run."""
    from wsbench.report import comparison, latest_runs
    from wsbench.runs import iter_runs

    from .test_report import fake_run

    runs = tmp_path / "runs"
    for split_seed, iou in ((1, 0.2), (2, 0.4)):  # two splits of the same files
        _set_config(fake_run(runs, "cam", 0, iou), split_seed=split_seed, data_fingerprint=f"split{split_seed}",
                    data_content="files")
    table = comparison(iter_runs(runs))
    assert [name for name, _ in table.rows] == ["synthetic-belt"]
    cell = dict(zip(table.columns, table.rows[0][1], strict=True))["CAM"]
    assert cell.n == 2 and cell.mean == pytest.approx(30.0)
    old = fake_run(runs, "puzzlecam", 0, 0.5)  # recorded before data_content existed, on split 1's files
    _set_config(old, split_seed=1, data_fingerprint="split1")
    assert [name for name, _ in comparison(iter_runs(runs)).rows] == ["synthetic-belt"]
    _set_config(fake_run(runs, "cam", 0, 0.7), split_seed=1, data_fingerprint="new", data_content="changed")
    kept, ignored = latest_runs(iter_runs(runs))
    assert ignored == 0 and len(kept) == 4
    assert len(comparison(iter_runs(runs)).rows) == 2
