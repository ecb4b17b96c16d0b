"""Beyond the paper: temporal stability, fusion for every method, pseudo-label export, video segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsbench.evaluate import StabilitySweep, predict_mask


def _square(t: int, h: int = 24, w: int = 32, side: int = 6, dx: int = 2) -> torch.Tensor:
    maps = torch.zeros(t, h, w)
    for i in range(t):
        maps[i, 8:8 + side, 3 + dx * i:3 + dx * i + side] = 0.9
    return maps


def test_stability_static_scene_identity_flow_is_perfect():
    maps = _square(1).repeat(5, 1, 1)
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(5, 2, 6, 8))
    stab = sweep.stability()
    assert sweep.pairs == 4
    assert stab[50] == 1.0 and stab[0] == 1.0
    assert np.isnan(stab[95])  # no mask at all above the map's values


def test_stability_translating_square_with_its_flow():
    maps = _square(6, dx=2)
    to_next = torch.zeros(6, 2, 6, 8)
    to_next[:, 0] = 0.5  # 2 px at 32 px wide = 0.5 px at the flow's 8 px
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), to_next)
    assert sweep.stability()[50] == pytest.approx(1.0)
    # the same masks without motion compensation overlap far less
    still = StabilitySweep()
    still.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(6, 2, 6, 8))
    assert still.stability()[50] < 0.6


def test_stability_of_random_masks_is_low():
    gen = torch.Generator().manual_seed(0)
    maps = (torch.rand(8, 32, 32, generator=gen) > 0.5).float()
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(8, 2, 8, 8))
    assert sweep.stability()[50] < 0.4  # ~1/3 for independent halves


def test_stability_ignores_background_and_pixels_leaving_the_frame():
    maps = torch.ones(2, 4, 4)
    fg = torch.zeros(2, 4, 4, dtype=torch.bool)
    fg[:, :, :2] = True  # left half is foreground in both frames
    to_next = torch.zeros(2, 2, 4, 4)
    to_next[:, 0] = 2.0  # the right half samples outside the next frame: excluded
    sweep = StabilitySweep()
    sweep.add_video(maps, fg, to_next)
    # left half of frame 0 (fg) meets columns 2-3 of frame 1 (background): union 8, intersection 0
    assert sweep.union[99] == 8 and sweep.inter.sum() == 0


def test_predict_mask_matches_threshold_bins():
    scores = np.array([[0.49, 0.5, 0.51, 0.9]], np.float32)
    fg = np.array([[True, True, True, False]])
    assert predict_mask(scores, fg, 0.5).tolist() == [[False, True, True, False]]


# -- temporal fusion at inference, for every method ---------------------------------------------
METHODS_ALL = ("cam", "gradcam", "puzzlecam", "tccam", "f2f")


@pytest.mark.parametrize("name", METHODS_ALL)
def test_fuse_neighbours_changes_config_hash_for_every_method(name, video_folder):
    from wsbench.pipeline import RunSpec, resolve

    spec = dict(method=name, dataset="video-folder", data_root=str(video_folder))
    base = resolve(RunSpec(**spec, fuse_neighbours=0))
    fused = resolve(RunSpec(**spec, fuse_neighbours=2, fuse_mode="max"))
    assert base.fusion is None and base.config["fusion"] is None
    assert fused.config["fusion"]["neighbours"] == 2 and fused.config["fusion"]["mode"] == "max"
    assert base.config["config_hash"] != fused.config["config_hash"]


def test_fusion_runs_for_every_method(video_folder):
    """Each method's maps go through the flow-warped fusion (an untrained net is enough to see it)."""
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.maps import MapProducer
    from wsbench.methods import Fusion, create_method
    from wsbench.model import build_model
    from wsbench.recipes import named_recipe

    recipe = named_recipe("smoke").recipe()
    data = prepare(create_dataset("video-folder", root=video_folder), recipe.image_size)
    flows = data.flows("dis")
    torch.manual_seed(0)
    model = build_model(recipe, ("before", "after", "background")).eval()
    pos = next(i for i, v in enumerate(data.index.videos) if v.label == "before")
    for name in METHODS_ALL:
        method = create_method(name)
        plain = MapProducer(method, model, torch.device("cpu"), fusion=None).video(data, pos)
        fused = MapProducer(method, model, torch.device("cpu"), fusion=Fusion(1, "max")).video(data, pos, flows)
        assert fused.shape == plain.shape == (len(data.index.videos[pos]),) + plain.shape[1:], name
        assert (fused >= plain - 1e-6).all(), name  # the max includes the frame's own map
        assert not torch.allclose(fused, plain), name


def test_fusion_benchmark_spec_pairs_every_method_with_fusion():
    from wsbench.suite import _specs, load_spec

    spec = load_spec(Path(__file__).parent.parent / "benchmarks" / "fusion.toml")
    specs = [s for _, s in _specs(spec, spec.seeds, {})]
    fused = {(s.method, s.method_options.get("spatial")) for s in specs if s.fuse_neighbours}
    assert all((s.fuse_neighbours, s.fuse_mode) in ((None, "max"), (2, "mean")) for s in specs)
    assert {m for m, _ in fused} == {"cam", "puzzlecam", "tccam"}
    unfused = {(s.method, s.method_options.get("spatial")) for s in specs if not s.fuse_neighbours}
    assert fused | {("gradcam", None), ("f2f", None)} == unfused  # gradcam with it is f2f --aggregate mean
    assert any(s.method == "f2f" and s.method_options == {"aggregate": "mean"} for s in specs)


def test_column_label_shows_fusion_other_than_the_methods_own():
    from dataclasses import asdict

    from wsbench.methods import Fusion, create_method, method_info
    from wsbench.report import column_label

    opts = asdict(create_method("f2f").options)
    cam, f2f_info = method_info(create_method("cam")), method_info(create_method("f2f"))
    plain = column_label({"method": "cam", "config": {"method_options": {}, "fusion": None, "method_info": cam}})
    fused = column_label({"method": "cam", "config": {"method_options": {}, "fusion": asdict(Fusion(2, "max")),
                                                      "method_info": cam}})
    assert plain != fused and fused.startswith(plain) and "2" in fused and "max" in fused
    f2f = column_label({"method": "f2f", "config": {"method_options": opts, "fusion": asdict(Fusion(2, "max")),
                                                    "method_info": f2f_info}})
    assert "fuse" not in f2f  # its own fusion
    assert column_label({"method": "f2f", "config": {"method_options": opts, "fusion": None,
                                                     "method_info": f2f_info}}) != f2f


# -- export, segment: on a tiny trained run -----------------------------------------------------
TINY = ["--recipe", "smoke"]


@pytest.fixture(scope="module")
def fused_run(tiny_run, tmp_path_factory):
    """A finished ``cam`` run with fusion ±1 (max) on the tiny belt, made beside a copy of the session's tiny run
    (whose classifier it reuses): (runs dir, cache dir, run dir)."""
    import json

    from click.testing import CliRunner

    from wsbench.cli import cli

    copy = tiny_run.copy(tmp_path_factory.mktemp("beyond"))
    runs, cache = copy.runs, copy.cache
    result = CliRunner().invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder", "--data-root",
                                      str(copy.data), "--runs-dir", str(runs), "--cache-dir", str(cache), "-q",
                                      "--fuse-neighbours", "1", *TINY])
    assert result.exit_code == 0, result.output
    assert "| stability " in result.output
    (run_dir,) = [p for p in runs.iterdir() if p.name not in ("classifiers", copy.run_dir.name)]
    res = json.loads((run_dir / "result.json").read_text())
    assert res["fusion"]["neighbours"] == 1 and res["fusion"]["mode"] == "max"
    assert res["config"]["fusion"] == res["fusion"]
    assert 0 <= res["metrics"]["stability"] <= 1 and res["counts"]["stability_pairs"] > 0
    return runs, cache, run_dir


@pytest.mark.slow
def test_leaderboard_labels_fused_runs(fused_run):
    from click.testing import CliRunner

    from wsbench.cli import cli

    runs, _, _ = fused_run
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "CAM --fuse 1 max" in result.output


@pytest.mark.slow
def test_export_cli_writes_trainer_layout(fused_run, tmp_path):
    import json

    import cv2
    from click.testing import CliRunner

    from wsbench.cli import cli

    runs, cache, run_dir = fused_run
    out = tmp_path / "pseudo"
    result = CliRunner().invoke(cli, ["export", "--run", run_dir.name, "--runs-dir", str(runs), "--cache-dir",
                                      str(cache), "--out", str(out), "--split", "test", "-q"])
    assert result.exit_code == 0, result.output
    images = sorted(p.relative_to(out / "images") for p in (out / "images").rglob("*.png"))
    masks = sorted(p.relative_to(out / "masks") for p in (out / "masks").rglob("*.png"))
    assert images == masks and len(images) == 2 * 2 * 8  # 2 test videos per camera, 8 frames
    assert {p.parts[0] for p in images} == {"test"}
    assert (out / "classes.txt").read_text().split() == ["background", "legal", "illegal"]
    assert json.loads((out / "classes.json").read_text())["classes"] == ["background", "legal", "illegal"]
    info = json.loads((out / "export.json").read_text())
    res = json.loads((run_dir / "result.json").read_text())
    assert info["run_id"] == run_dir.name and info["threshold"] == res["metrics"]["threshold"]
    assert info["splits"] == ["test"] and info["frames"]["test"] == {"before_frames": 16, "after_frames": 16}
    seen = set()
    for rel in masks:
        mask = cv2.imread(str(out / "masks" / rel), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(out / "images" / rel))
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2] == (64, 64)
        values = set(np.unique(mask).tolist())
        assert values <= {0, 1, 2}
        if rel.name.startswith("after_"):
            assert 2 not in values  # no illegal objects after the operator
        seen |= values
    assert 0 in seen and 2 in seen
    assert sum(info["pixels"].values()) == len(masks) * 64 * 64
    # a second export into the same folder is refused, not mixed
    again = CliRunner().invoke(cli, ["export", "--run", str(run_dir), "--cache-dir", str(cache), "--out", str(out)])
    assert again.exit_code == 1 and "not an empty folder" in again.output


@pytest.mark.slow
def test_segment_cli_on_frame_folder(fused_run, tiny_belt, tmp_path):
    import json

    import cv2
    from click.testing import CliRunner

    from wsbench.cli import cli

    runs, _, run_dir = fused_run
    video = sorted((tiny_belt / "before").iterdir())[0]
    out = tmp_path / "seg"
    result = CliRunner().invoke(cli, ["segment", "--run", run_dir.name, "--runs-dir", str(runs), str(video),
                                      "--out", str(out), "--save-overlays", "--batch-size", "3", "-q"])
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in video.iterdir())
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == names
    assert sorted(p.stem for p in (out / "overlay").glob("*.png")) == names
    info = json.loads((out / "segment.json").read_text())
    assert info["frames"] == len(names) and info["fusion"]["neighbours"] == 1
    for name in names:
        mask = cv2.imread(str(out / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        frame = cv2.imread(str(video / f"{name}.png"))
        shown = cv2.imread(str(out / "overlay" / f"{name}.png"))
        assert set(np.unique(mask).tolist()) <= {0, 1, 2} and mask.shape == frame.shape[:2]
        assert np.array_equal(shown[mask != 2], frame[mask != 2])  # only illegal pixels are tinted
        if (mask == 2).any():
            assert (shown[mask == 2][:, 2].astype(int) >= frame[mask == 2][:, 2]).all()  # more red (BGR)


def _write_mp4(path, frames, fps=10.0) -> bool:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        return False
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path.exists() and path.stat().st_size > 0


@pytest.mark.slow
def test_segment_cli_on_mp4_with_overlay_video(fused_run, tiny_belt, tmp_path):
    import cv2
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.data.io import read_image

    runs, _, run_dir = fused_run
    video = sorted((tiny_belt / "before").iterdir())[0]
    frames = [read_image(p) for p in sorted(video.iterdir())]
    mp4 = tmp_path / "belt.mp4"
    if not _write_mp4(mp4, frames):
        pytest.skip("OpenCV cannot write mp4v here")
    out, overlay_video = tmp_path / "seg", tmp_path / "overlay.mp4"
    result = CliRunner().invoke(cli, ["segment", "--run", str(run_dir), str(mp4), "--out", str(out),
                                      "--overlay-video", str(overlay_video), "--bg-frames", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "masks").glob("belt_*.png"))) == len(frames)
    capture = cv2.VideoCapture(str(overlay_video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == len(frames)


def test_segment_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from wsbench.cli import cli

    result = CliRunner().invoke(cli, ["segment", "--run", "nope", "x.mp4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such run" in result.output and "Traceback" not in result.output


# -- streaming ----------------------------------------------------------------------------------
def _random_run(tmp_path, fusion):
    from wsbench.inference import TrainedRun
    from wsbench.maps import MapProducer
    from wsbench.methods import create_method
    from wsbench.model import build_model
    from wsbench.recipes import named_recipe
    from wsbench.runs import RunRecord

    recipe = named_recipe("smoke").recipe()
    torch.manual_seed(0)
    model = build_model(recipe, ("before", "after", "background")).eval()
    return TrainedRun(record=RunRecord(tmp_path, {}, {}), recipe=recipe, threshold=0.3,
                      producer=MapProducer(create_method("cam"), model, torch.device("cpu"), fusion=fusion))


def _belt_frames(n, size=(48, 40)):
    from tests.conftest import _frame

    rng = np.random.default_rng(0)
    return [_frame(rng, size, t, illegal=True)[0] for t in range(n)]


def test_segment_stream_is_lazy_and_bounded(tmp_path):
    """Frames are pulled from a generator as needed: what is resident never grows with the stream."""
    from wsbench.methods import Fusion
    from wsbench.segment import segment_stream, stream_background

    frames = _belt_frames(8)
    pulled = 0

    def generator(n):
        nonlocal pulled
        for t in range(n):
            pulled += 1
            yield frames[t % len(frames)]

    trained = _random_run(tmp_path, Fusion(2, "mean"))
    background = stream_background(iter(frames), 8)
    batch, k, n = 3, 2, 40
    resident = []
    indices = []
    for item in segment_stream(trained, generator(n), background, batch_size=batch):
        indices.append(item.index)
        resident.append(pulled - item.index)  # read but not yet handed out (this one included)
    assert indices == list(range(n))
    assert max(resident) <= batch + k  # independent of n
    assert pulled == n


@pytest.mark.parametrize("fusion", [dict(neighbours=2, mode="max"), dict(neighbours=2, mode="mean", warp=False),
                                    dict(neighbours=2, mode="max", causal=True),
                                    dict(neighbours=1, mode="max", on="raw")])
def test_segment_stream_fusion_equals_whole_video_fusion(tmp_path, fusion):
    """The ring buffer gives the same masks as fusing the whole video at once."""
    from wsbench.data.cache import frame_arrays
    from wsbench.flow import estimate_video_flows, resize_flow
    from wsbench.inference import label_mask
    from wsbench.maps import fuse_maps
    from wsbench.methods import Fusion
    from wsbench.segment import segment_stream, stream_background

    frames = _belt_frames(9)
    fusion = Fusion(**fusion)
    trained = _random_run(tmp_path, fusion)
    background = stream_background(iter(frames), 9)
    streamed = [item.mask for item in segment_stream(trained, iter(frames), background, batch_size=4)]

    arrays = [frame_arrays(f, background, (32, 32)) for f in frames]
    small = np.stack([a[0] for a in arrays])
    maps = trained.producer.batch(small, np.stack([a[1] for a in arrays]))  # raw maps when fusion is on raw maps
    fwd, bwd = estimate_video_flows(small, "dis")
    to = [resize_flow(torch.from_numpy(f).permute(0, 3, 1, 2), (8, 8)) for f in (fwd, bwd)]
    fused = fuse_maps(maps, to[0], to[1], fusion)
    import cv2

    for t, mask in enumerate(streamed):
        scores = cv2.resize(fused[t].numpy(), (48, 40), interpolation=cv2.INTER_LINEAR)
        fg = cv2.resize(arrays[t][2], (48, 40), interpolation=cv2.INTER_NEAREST) > 0
        assert np.array_equal(mask, label_mask(scores, fg, trained.threshold)), t


def test_label_mask_and_overlay():
    from wsbench.inference import label_mask, overlay

    scores = np.array([[0.9, 0.9, 0.1, 0.1]], np.float32)
    fg = np.array([[True, False, True, False]])
    assert label_mask(scores, fg, 0.5).tolist() == [[2, 0, 1, 0]]
    assert label_mask(None, fg, 0.5).tolist() == [[1, 0, 1, 0]]  # after frame
    frame = np.full((1, 4, 3), 100, np.uint8)
    shown = overlay(frame, np.array([[2, 0, 1, 0]], np.uint8))
    assert shown[0, 0].tolist() == [178, 50, 50] and (shown[0, 1:] == 100).all()


@pytest.mark.slow
def test_export_masks_are_exactly_what_was_scored_with_multiscale_flip(fused_run, tiny_belt, tmp_path):
    """Export (and figures, through the same TrainedRun) reuse the run's multi-scale/flip inference and fusion:
    the IoU recomputed from the exported masks equals the run's test IoU."""
    import json

    import cv2
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.inference import load_run

    runs, cache, _ = fused_run
    result = CliRunner().invoke(cli, ["run", "--method", "cam", "--dataset", "video-folder", "--data-root",
                                      str(tiny_belt), "--runs-dir", str(runs), "--cache-dir", str(cache), "-q",
                                      "--fuse-neighbours", "1", "--cam-scales", "0.5,1,2", "--cam-flip", *TINY])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in runs.iterdir() if (p / "result.json").is_file()
                  and json.loads((p / "result.json").read_text())["config"].get("cam_inference")]
    res = json.loads((run_dir / "result.json").read_text())
    assert res["config"]["cam_inference"] == {"scales": [0.5, 1.0, 2.0], "flip": True}
    trained = load_run(run_dir)
    assert trained.producer.cam.scales == (0.5, 1.0, 2.0) and trained.producer.cam.flip
    out = tmp_path / "pseudo"
    result = CliRunner().invoke(cli, ["export", "--run", str(run_dir), "--cache-dir", str(cache), "--out", str(out),
                                      "--split", "test", "-q"])
    assert result.exit_code == 0, result.output
    inter = union = 0
    for mask_path in (out / "masks" / "test").glob("before_*.png"):
        video, frame = mask_path.stem[len("before_"):].split("_", 1)
        gt = cv2.imread(str(tiny_belt / "masks" / "before" / video / f"{frame}.png"), cv2.IMREAD_GRAYSCALE) >= 128
        pred = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED) == 2
        inter += int((gt & pred).sum())
        union += int((gt | pred).sum())
    assert union > 0
    assert inter / union == pytest.approx(res["metrics"]["iou_illegal"], abs=2e-3)
