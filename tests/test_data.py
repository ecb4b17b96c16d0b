"""Data layer: layouts, splits, background removal, caches and torch datasets."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import write_mp4_folder, write_video_folder
from wsbench.data import DATASETS, create_dataset
from wsbench.data.cache import prepare
from wsbench.data.index import assign_splits
from wsbench.data.io import natural_key
from wsbench.data.synthetic import BeltConfig
from wsbench.data.torch_data import ClipDataset, FrameDataset
from wsbench.errors import UserError
from wsbench.testing import DatasetContract


def test_natural_sort():
    names = ["f10.png", "f2.png", "f1.png", "img_100.jpg", "img_9.jpg"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "f10.png", "img_9.jpg", "img_100.jpg"]


def test_video_folder_with_jpeg_odd_size_and_name_gaps(tmp_path):
    root = write_video_folder(tmp_path / "d", videos=5, frames=4, size=(37, 29), ext=".JPG",
                              name=lambda t: f"cam1_{t * 7 + 3}")
    index = create_dataset("video-folder", root=root)
    v = index.videos[0]
    assert v.label == "before" and list(v.frames.names) == ["cam1_3", "cam1_10", "cam1_17", "cam1_24"]
    assert v.frames.read(0).shape == (29, 37, 3)
    assert v.has_masks and v.masks[1].name == "cam1_10.png"
    counts = index.counts()
    assert counts["train"]["before"]["videos"] == 3  # 20 % of 5, but at least one for val and test
    assert counts["val"]["before"]["videos"] == 1 and counts["test"]["before"]["videos"] == 1
    assert sum(c["videos"] for s in counts.values() for c in s.values()) == 10


def test_split_by_video_is_seeded_and_gives_val_and_test_masks(tmp_path):
    root = write_video_folder(tmp_path / "d", videos=10, frames=2)
    a = create_dataset("video-folder", root=root, split_seed=3)
    b = create_dataset("video-folder", root=root, split_seed=3)
    assert [v.split for v in a.videos] == [v.split for v in b.videos]
    held = [v for v in a.videos if v.label == "before" and v.split != "train"]
    assert len(held) == 2 and {v.split for v in held} == {"val", "test"}
    c = create_dataset("video-folder", root=root, split_seed=4)
    assert [v.split for v in a.videos] != [v.split for v in c.videos]


def test_splits_json_is_used(tmp_path):
    splits = {"train": ["vid0", "after/vid1"], "val": ["before/vid1"], "test": ["vid2", "after/vid2"]}
    root = write_video_folder(tmp_path / "d", videos=3, frames=2, splits=splits)
    index = create_dataset("video-folder", root=root)
    by_key = {v.key: v.split for v in index.videos}
    assert by_key == {"before/vid0": "train", "after/vid0": "train", "after/vid1": "train",
                      "before/vid1": "val", "before/vid2": "test", "after/vid2": "test"}
    (root / "splits.json").write_text(json.dumps({"train": ["nope"]}))
    with pytest.raises(UserError, match="splits.json: train lists video 'nope'"):
        create_dataset("video-folder", root=root)


def test_single_masked_held_out_video_goes_to_test(tmp_path):
    from wsbench.data.index import Video
    from wsbench.data.io import ImageFiles

    videos = [Video("before", f"v{i}", ImageFiles([]), masks=[tmp_path / "m.png"]) for i in range(3)]
    assign_splits(videos, seed=0, val_fraction=0.2)
    assert sorted(v.split for v in videos) == ["test", "train", "train"]  # test needs GT more than val


def test_layout_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match="data root not found"):
        create_dataset("video-folder", root=tmp_path / "missing")
    (tmp_path / "d" / "before").mkdir(parents=True)
    with pytest.raises(UserError, match=r"d/after: missing"):
        create_dataset("video-folder", root=tmp_path / "d")
    (tmp_path / "d" / "after").mkdir()
    with pytest.raises(UserError, match=r"d/before: no videos"):
        create_dataset("video-folder", root=tmp_path / "d")


def test_mask_without_frame_is_an_error(tmp_path):
    root = write_video_folder(tmp_path / "d", videos=2, frames=2)
    cv2.imwrite(str(root / "masks/before/vid0/frame_0099.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError, match="frame_0099.png: mask has no matching frame"):
        create_dataset("video-folder", root=root)


def test_non_image_files_are_skipped_with_a_warning(tmp_path):
    root = write_video_folder(tmp_path / "d", videos=2, frames=2)
    (root / "before/vid0/notes.txt").write_text("hello")
    (root / "before/vid0/.DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match="skipped 1 non-image file"):
        index = create_dataset("video-folder", root=root)
    assert len(index.videos[0]) == 2


def write_zerowaste(root: Path) -> Path:
    """A tiny ZeroWaste-w tree: 5 before videos and 5 after stills' groups of 30x20 frames, one GT mask."""
    rng = np.random.default_rng(0)
    for label, vids in (("before", ("01", "02", "03", "04", "05")), ("after", ("07", "08", "09", "10", "11"))):
        (root / label).mkdir(parents=True)
        for vid in vids:
            for n in (4640, 120, 33000):
                img = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
                cv2.imwrite(str(root / label / f"{vid}_frame_{n:06d}.PNG"), img)
    (root / "segmentation_gt/before").mkdir(parents=True)
    cv2.imwrite(str(root / "segmentation_gt/before/02_frame_000120.PNG"), np.zeros((20, 30), np.uint8))
    return root


def test_zerowaste_layout(tmp_path):
    root = write_zerowaste(tmp_path / "zw")
    index = create_dataset("zerowaste-w", root=root)
    assert index.static_after
    v = next(v for v in index.videos if v.key == "before/02")
    assert list(v.frames.names) == ["02_frame_000120", "02_frame_004640", "02_frame_033000"]
    assert v.masks[0] is not None and v.masks[1] is None
    (root / "before/bad_name.PNG").write_bytes(b"x")
    with pytest.raises(UserError, match="bad_name.PNG: name is not <video>_frame_<number>"):
        create_dataset("zerowaste-w", root=root)


def test_cache_and_background_removal(video_folder, tmp_path):
    index = create_dataset("video-folder", root=video_folder)
    data = prepare(index, (32, 24), cache_dir=tmp_path / "c")
    assert data.frames.shape == (30, 24, 32, 3) and data.fg.shape == (30, 24, 32)
    assert isinstance(data.frames, np.memmap)
    # the moving objects are foreground, the flat belt is not
    assert 0.02 < data.fg.mean() < 0.5
    full = data.fg_full(0, 0)
    assert full.shape == (40, 48) and full.dtype == bool
    again = prepare(index, (32, 24), cache_dir=tmp_path / "c")  # reused, not rebuilt
    assert again.path == data.path and again.timings["frames"] == 0.0


def test_frame_and_clip_datasets(video_folder, tmp_path):
    index = create_dataset("video-folder", root=video_folder)
    data = prepare(index, (32, 24), cache_dir=tmp_path / "c")
    frames = FrameDataset(data, "train")
    n_train = sum(len(v) for v in index.videos if v.split == "train")
    assert len(frames) == 2 * n_train  # objects + background image per frame
    labels = {frames[i]["label"] for i in range(len(frames))}
    assert labels == {0, 1, 2}
    item = frames[0]
    assert item["image"].shape == (3, 24, 32) and item["image"].dtype.is_floating_point is False
    flows = data.flows("farneback")
    assert flows.shape == (30, 2, 2, 6, 8)
    clips = ClipDataset(data, "train", flows, clip_len=3)
    starts = {c[0] for c in clips.items}
    s0 = next(s for s, v in zip(data.slices, index.videos, strict=True) if v.split == "train")
    assert s0.start in starts  # 5 frames, clips of 3: one clip per epoch, at [0,3) for offset 0
    clips.set_offset(2)
    assert s0.start + 2 in {c[0] for c in clips.items}  # and at [2,5) for offset 2
    for t0, _, _ in clips.items:  # no clip crosses two videos
        assert any(s.start <= t0 and t0 + 3 <= s.stop for s in data.slices)
    triplets = ClipDataset(data, "train", flows, clip_len=3, stride=1)
    assert len(triplets) == 3 * len(triplets.items) // 3 and len(triplets) > len(clips)
    clip = clips[0]
    assert clip["images"].shape == (3, 3, 24, 32) and clip["flows"].shape == (3, 2, 2, 6, 8)


def test_short_videos_skipped_for_clips(tmp_path):
    root = write_video_folder(tmp_path / "d", videos=3, frames=2)
    index = create_dataset("video-folder", root=root)
    data = prepare(index, (32, 24), cache_dir=tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match="no train video has the 3 consecutive frames"):
            ClipDataset(data, "train", data.flows("farneback"), clip_len=3)


def test_training_path_never_opens_gt_masks(video_folder, tmp_path, monkeypatch):
    """Build caches, flows and iterate both training datasets with mask reading booby-trapped."""
    import builtins

    import wsbench.data.io as io

    opened = []
    real_open = builtins.open

    def spy_open(file, *args, **kwargs):
        if "masks" in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    real_imdecode, real_imread = cv2.imdecode, cv2.imread

    def boom(*args, **kwargs):
        raise AssertionError("GT mask read on the training path")

    monkeypatch.setattr(io, "read_mask", boom)
    monkeypatch.setattr(builtins, "open", spy_open)
    index = create_dataset("video-folder", root=video_folder)
    data = prepare(index, (32, 24), cache_dir=tmp_path / "c")
    for ds in (FrameDataset(data, "train"), ClipDataset(data, "train", data.flows("farneback"), clip_len=3)):
        for i in range(len(ds)):
            ds[i]
    assert opened == []
    assert real_imdecode is cv2.imdecode and real_imread is cv2.imread


def test_background_removal_keeps_small_and_thin_objects():
    """At 1024-px analysis size the old 25-px opening deleted every object narrower than 25 px."""
    from wsbench.data.background import foreground_mask

    background = np.full((1024, 1024), 100, np.uint8)
    gray = background.copy()
    gray[100:124, 100:124] = 200  # a 24-px square
    gray[300:615, 300:315] = 200  # a 15 x 315 px strip
    gray[700:706, 700:706] = 200  # a 6-px square
    default = foreground_mask(gray, background, 22)
    none = foreground_mask(gray, background, 22, morph=0)
    for region in (np.s_[100:124, 100:124], np.s_[300:615, 300:315], np.s_[700:706, 700:706]):
        assert default[region].all() and none[region].all()
    speckle = background.copy()
    speckle[500, 500] = 200
    assert foreground_mask(speckle, background, 22).sum() == 0  # one-pixel noise is what the default removes
    assert foreground_mask(speckle, background, 22, morph=0).sum() == 1


# -- recordings as video files -------------------------------------------------------------------
def test_video_files_are_read_and_segmented(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=20)

    whole = create_dataset("video-folder", root=root)
    assert sorted(v.key for v in whole.videos) == [f"{c}/vid{i}" for c in ("after", "before") for i in range(3)]
    video = next(v for v in whole.videos if v.key == "before/vid0")
    assert len(video) == 20 and video.frames.names[3] == "vid0_000003" and video.has_masks
    assert [m.name for m in video.masks][:2] == ["vid0_000000.png", "vid0_000001.png"]

    segmented = create_dataset("video-folder", root=root, segment_seconds=1.0)  # 10 fps: two 10-frame segments
    ids = sorted(v.key for v in segmented.videos if v.label == "before")
    assert ids == [f"before/vid{i}-{k:03d}" for i in range(3) for k in range(2)]
    second = next(v for v in segmented.videos if v.key == "before/vid0-001")
    assert len(second) == 10 and second.frames.names[0] == "vid0_000010"
    assert second.masks[0].name == "vid0_000010.png"  # masks follow the file's frame numbers
    decoded = np.stack(list(second.frames)).astype(np.int16)
    reference = np.stack(list(video.frames))[10:20].astype(np.int16)
    assert np.abs(decoded - reference).mean() < 1.0  # the segment starts at frame 10, not elsewhere

    strided = create_dataset("video-folder", root=root, segment_seconds=1.0, stride=2)  # 5 kept frames a segment
    assert [len(v) for v in strided.videos if v.label == "after"] == [5] * 6


def test_video_files_and_frame_folders_mix(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=5)
    write_video_folder(tmp_path / "frames", videos=1, frames=5)
    shutil.copytree(tmp_path / "frames" / "before" / "vid0", root / "before" / "folder0")
    shutil.copytree(tmp_path / "frames" / "masks" / "before" / "vid0", root / "masks" / "before" / "folder0")
    index = create_dataset("video-folder", root=root)
    kinds = {v.id: type(v.frames).__name__ for v in index.videos if v.label == "before"}
    assert kinds == {"folder0": "ImageFiles", "vid0": "VideoFile", "vid1": "VideoFile", "vid2": "VideoFile"}
    assert all(v.has_masks for v in index.videos if v.label == "before")
    assert index.info["segment_seconds"] is None and index.info["stride"] == 1
    assert "stride" not in create_dataset("video-folder", root=tmp_path / "frames").info  # unchanged for frames


def test_video_file_errors_name_the_problem(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=6)
    with pytest.raises(UserError, match="segment_seconds must be positive"):
        create_dataset("video-folder", root=root, segment_seconds=0)
    with pytest.raises(UserError, match="takes no option 'fps'"):
        create_dataset("video-folder", root=root, fps=3)
    shutil.copy(root / "masks/before/vid0/vid0_000000.png", root / "masks/before/vid0/vid0_000099.png")
    with pytest.raises(UserError, match="vid0_000099.png: mask has no matching frame"):
        create_dataset("video-folder", root=root)
    (root / "masks/before/vid0/vid0_000099.png").unlink()
    assert len(create_dataset("video-folder", root=root, stride=4).videos) == 6  # masks of skipped frames are fine
    with pytest.raises(UserError, match="shorter than half of segment_seconds"):
        create_dataset("video-folder", root=root, segment_seconds=5)  # 6 frames at 10 fps
    (root / "before" / "vid1.mp4").write_bytes(b"not a video")
    with pytest.raises(UserError, match="vid1.mp4: not a readable video"):
        create_dataset("video-folder", root=root)
    (root / "before" / "vid1.mp4").unlink()
    shutil.rmtree(root / "masks" / "before" / "vid1")
    for f in (root / "after").iterdir():
        f.unlink()
    with pytest.raises(UserError, match="after: no videos"):
        create_dataset("video-folder", root=root)


@pytest.mark.slow
def test_video_file_options_on_the_command_line(tmp_path):
    root = write_mp4_folder(tmp_path / "mp4", frames=16)
    shown = _wsbench_cli("data", "show", str(root), "--dataset", "video-folder",
                         "--dataset-option", "segment_seconds=0.8", "--out", str(tmp_path / "sheet.png"))
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "sheet.png").is_file()
    runs = tmp_path / "runs"
    ran = _wsbench_cli("run", "--method", "cam", "--dataset", "video-folder", "--data-root", str(root),
                   "--dataset-option", "segment_seconds=0.8", "--runs-dir", str(runs), "-q", "--recipe", "smoke")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (config_path,) = runs.glob("*/config.json")
    config = json.loads(config_path.read_text())
    assert config["dataset_options"] == {"segment_seconds": 0.8}
    assert config["dataset_info"]["segment_seconds"] == 0.8


def _wsbench_cli(*args: str):
    """``wsbench ARGS`` in-process; returns an object with returncode, stdout and stderr."""
    import types

    from click.testing import CliRunner

    from wsbench.cli import cli

    result = CliRunner().invoke(cli, list(args))
    return types.SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


# -- the data set contract, over every built-in data set ------------------------------------------
def _tiny_belt_config():
    return BeltConfig(train_videos=2, val_videos=1, test_videos=1, frames=3, size=(32, 32))


def _write_seruso(root: Path) -> Path:
    from tests.test_seruso import write_seruso

    return write_seruso(root)


#: a tiny example of every built-in data set: (writer of its root or None, frame size (w, h))
EXAMPLES = {
    "video-folder": (write_video_folder, (48, 40)),
    "zerowaste-w": (write_zerowaste, (30, 20)),
    "seruso": (_write_seruso, (48, 40)),
    "ws2": (_write_seruso, (48, 40)),
    "synthetic-belt": (None, (32, 32)),  # generated, with the tiny config above
}
BUILTIN_DATASETS = [e.name for e in DATASETS.entries() if e.source == "built-in"]


def test_every_builtin_data_set_has_a_contract_example():
    assert sorted(EXAMPLES) == sorted(BUILTIN_DATASETS), "add a tiny example of the new data set to EXAMPLES"


class TestBuiltinDatasets(DatasetContract):
    """Every built-in data set keeps :class:`wsbench.testing.DatasetContract` on a tiny example."""

    @pytest.fixture(params=BUILTIN_DATASETS)
    def spec(self, request, monkeypatch):
        if request.param == "synthetic-belt":  # the built-in belt takes 40 s to generate; a tiny one
            import wsbench.data.synthetic as synthetic

            monkeypatch.setattr(synthetic, "BeltConfig", _tiny_belt_config)
        return request.param, {}

    def write_example(self, name, folder):
        writer = EXAMPLES[name][0]
        return writer(folder) if writer else None

    def expected_frame_size(self, name):
        return EXAMPLES[name][1]


def test_dataset_contract_catches_a_frame_in_two_splits_and_a_mask_of_another_size(tmp_path):
    """The contract's checks can fail: one frame file in a train and a test video; a mask too small."""
    index = create_dataset("video-folder", root=write_video_folder(tmp_path / "vf"))
    train = next(v for v in index.videos if v.split == "train")
    test = next(v for v in index.videos if v.split == "test")
    contract = DatasetContract()
    contract.test_splits_are_disjoint_by_video(index)
    test.frames.paths[0] = train.frames.paths[0]
    with pytest.raises(AssertionError, match="is a frame of a"):
        contract.test_splits_are_disjoint_by_video(index)
    masked = next(v for v in index.videos if v.has_masks)
    cv2.imwrite(str(masked.masks[0]), np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError):
        contract.test_masks_only_where_declared(index)


def test_belt_config_scaled_keeps_the_split_proportions():
    """``wsbench data synth --videos N``: val and test scale with the train videos (16/24, 96/24), at least one;
    ``--test-videos`` sets the test count alone."""
    scaled = BeltConfig().scaled(videos=3, frames=4, size=(64, 48), seed=7)
    assert (scaled.train_videos, scaled.val_videos, scaled.test_videos) == (3, 2, 12)
    assert BeltConfig().scaled(videos=3, test_videos=5).test_videos == 5
    assert (scaled.frames, scaled.size, scaled.seed) == (4, (64, 48), 7)
    assert BeltConfig().scaled(videos=1).val_videos == 1  # round(16 / 24) = 1, and never 0
    assert BeltConfig().scaled() == BeltConfig()
    with pytest.raises(UserError, match="without train videos"):
        BeltConfig(train_videos=0).scaled(videos=2)
