"""The contract every data set keeps (:class:`DatasetContract`), on a tiny example of its layout."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from ._base import Contract

__all__ = ["DatasetContract"]


class DatasetContract(Contract):
    """Checks of one registered data set on a tiny example of its layout.

    The index lists videos labelled ``before``/``after`` with unique keys; every frame reads as RGB
    ``uint8`` at the declared size (or at one size per video); splits are disjoint by video and no
    frame file belongs to videos of two splits; GT masks exist only where declared, one entry per
    frame, at the frame's size; and building the training caches and iterating the training set
    opens no GT mask.

    Attributes:
        name: the data set's registry name.
        options: its options for the checks.
        frame_size: ``(width, height)`` every frame must have; ``None``: one size per video.
    """

    frame_size: ClassVar[tuple[int, int] | None] = None

    def write_example(self, name: str, folder: Path) -> Path | None:
        """Write a tiny example of data set ``name`` under ``folder`` and return its root.

        The default returns ``None``, for a data set that needs no root (it generates its data).
        A data set read from files overrides this: a few short videos per label, some with masks.
        """
        return None

    def expected_frame_size(self, name: str) -> tuple[int, int] | None:
        """The ``(width, height)`` every frame of ``name``'s example has (default: ``frame_size``)."""
        return self.frame_size

    @pytest.fixture
    def index(self, spec, tmp_path):
        """The example's index, built by ``create_dataset``."""
        from wsbench.data import create_dataset

        name, options = spec
        root = self.write_example(name, tmp_path / "example")
        return create_dataset(name, root=root, cache_dir=tmp_path / "cache", **options)

    def test_registered_with_description_and_docstring(self, spec):
        from wsbench.data import DATASETS

        entry = DATASETS.entry(spec[0])
        assert entry.meta.description, f"data set {spec[0]!r} has no description"
        assert entry.obj.__doc__ and entry.obj.__doc__.strip()

    def test_index_lists_labelled_videos(self, spec, index):
        from wsbench.data import LABELS, SPLITS, VideoIndex

        assert isinstance(index, VideoIndex) and index.name == spec[0]
        assert {v.label for v in index.videos} == set(LABELS), "both labels need videos"
        keys = [v.key for v in index.videos]
        assert len(keys) == len(set(keys)), "video keys (label/id) must be unique"
        for video in index.videos:
            assert video.split in SPLITS, f"{video.key}: split {video.split!r}"
            assert len(video) >= 1 and len(video.frames.names) == len(video), f"{video.key}: frame names"
            assert len(set(video.frames.names)) == len(video), f"{video.key}: frame names must be unique"
        assert index.split("train"), "no train video"

    def test_frames_read_at_the_declared_size(self, spec, index):
        size = self.expected_frame_size(spec[0])
        for video in index.videos:
            first = video.frames.read(0)
            assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3, f"{video.key}: {first.shape}"
            if size is not None:
                assert first.shape[:2] == (size[1], size[0]), f"{video.key}: {first.shape}, declared {size}"
            assert video.frames.read(len(video) - 1).shape == first.shape, f"{video.key}: frame sizes differ"
        video = index.videos[0]
        frames = list(video.frames)
        assert len(frames) == len(video), f"{video.key}: iterating gives {len(frames)} frames, len() says {len(video)}"
        assert all(np.array_equal(f, video.frames.read(i)) for i, f in enumerate(frames)), "read(i) != i-th frame"

    def test_splits_are_disjoint_by_video(self, index):
        owner: dict[str, str] = {}
        for video in index.videos:
            for path in getattr(video.frames, "paths", None) or []:
                where = owner.setdefault(str(Path(path).resolve()), video.split)
                assert where == video.split, f"{path} is a frame of a {where} and a {video.split} video"

    def test_masks_only_where_declared(self, index):
        from wsbench.data.io import read_mask

        assert any(v.has_masks for v in index.videos), "the example should have GT masks somewhere"
        for video in index.videos:
            if video.masks is None:
                continue
            assert len(video.masks) == len(video), f"{video.key}: {len(video.masks)} mask entries, {len(video)} frames"
            for i, mask in enumerate(video.masks):
                if mask is not None:
                    h, w = video.frames.read(i).shape[:2]
                    assert read_mask(mask, (w, h)).shape == (h, w)

    def test_training_path_opens_no_gt_mask(self, index, tmp_path, monkeypatch):
        import wsbench.data.io as io
        from wsbench.data.cache import prepare
        from wsbench.data.torch_data import FrameDataset

        masks = {str(Path(m).resolve()) for v in index.videos for m in v.masks or [] if m is not None}
        opened: list[str] = []
        real_open = builtins.open

        def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, Path)) and str(Path(file).resolve()) in masks:
                opened.append(str(file))
            return real_open(file, *args, **kwargs)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("GT mask read on the training path")

        monkeypatch.setattr(io, "read_mask", refuse)
        monkeypatch.setattr(builtins, "open", spy_open)
        data = prepare(index, (32, 24), cache_dir=tmp_path / "train-cache")
        train = FrameDataset(data, "train")
        for i in range(len(train)):
            train[i]
        assert opened == [], f"GT masks opened on the training path: {opened[:3]}"
