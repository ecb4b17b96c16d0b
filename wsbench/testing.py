"""The contracts every method, flow estimator and data set keeps, as pytest base classes.

wsbench's own tests run them over every built-in entry of the registries; a plugin gets the same
checks by subclassing one in its tests and naming its entry::

    from wsbench.testing import MethodContract

    class TestMine(MethodContract):
        name = "mine"          # the registered name
        options = {"frames": 3}  # optional: the options to build it with

:class:`FlowContract` and :class:`DatasetContract` work the same way (a data set also writes a
tiny example of its layout, :meth:`DatasetContract.write_example`). Each contract builds what it
checks from a ``spec`` fixture, ``(name, options)`` from the class attributes by default; a test
module overrides that fixture with ``params`` to run one contract over many entries.

This module imports pytest and is imported by tests only: nothing else in wsbench imports it, so
wsbench itself never needs pytest.
"""

from __future__ import annotations

import builtins
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

__all__ = ["MethodContract", "FlowContract", "DatasetContract", "textured_pair"]


# -- methods ------------------------------------------------------------------------------------
class MethodContract:
    """Checks of one registered method on a tiny random classifier (no data, no training).

    Attributes:
        name: the method's registry name.
        options: its options for the checks.
        batch: images per checked batch.
        size: side of the checked images (pixels).
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    batch: ClassVar[int] = 2
    size: ClassVar[int] = 32

    @pytest.fixture
    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of the method under test; override with ``params`` to check many."""
        return self.name, dict(self.options)

    @pytest.fixture
    def method(self, spec):
        """The method built from ``spec``."""
        from wsbench.methods import create_method

        name, options = spec
        return create_method(name, **options)

    @pytest.fixture
    def model(self, method):
        """A tiny random classifier with the head the method's trainer uses."""
        import torch

        from wsbench.methods import create_trainer
        from wsbench.model import CamNet

        torch.manual_seed(0)
        return CamNet("wsbench_resnet_tiny", output_stride=8, head=create_trainer(method).head)

    def images(self, model: Any, n: int | None = None) -> Any:
        """``n`` (default ``batch``) seeded random images, normalised for ``model``."""
        import torch

        gen = torch.Generator().manual_seed(1)
        raw = torch.randint(0, 256, (n or self.batch, 3, self.size, self.size), generator=gen)
        return model.normalize(raw)

    def test_registered_with_docstring_and_frozen_options(self, spec, method):
        from wsbench.methods import METHODS, method_options

        name, _ = spec
        entry = METHODS.entry(name)
        assert entry.meta.description
        doc = type(method).__doc__
        assert doc and doc.strip()
        assert dataclasses.is_dataclass(method.Options)
        with pytest.raises(dataclasses.FrozenInstanceError):  # frozen: options are part of the run's key
            method.options.changed = True
        for option in method_options(name):
            assert option.help, f"option {option.name} of {name} has no help text"

    def test_classifier_is_a_registered_training_recipe(self, spec, method):
        from wsbench.methods import METHODS, create_method

        name, _ = spec
        trainer_name, trainer_options = method.classifier()
        trainer = create_method(trainer_name, **trainer_options)
        assert trainer.classifier() == (trainer_name, trainer_options), "the trainer must own its recipe"
        if not METHODS.entry(name).meta.trains:
            assert trainer_name != name
        if trainer.clip_length() > 1:
            assert METHODS.entry(name).meta.needs_video

    def test_maps_shape_range_and_no_side_effects(self, spec, method, model):
        import torch

        from wsbench.methods import METHODS

        model.train()
        images = self.images(model)
        grad = torch.enable_grad() if METHODS.entry(spec[0]).meta.needs_grad else torch.no_grad()
        with grad:
            maps = method.maps(model, images)
        assert maps.dim() == 3 and maps.shape[0] == self.batch
        assert maps.shape[1] >= self.size // 8 and maps.shape[2] >= self.size // 8
        assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        assert model.training, "maps() must leave the model's train/eval mode as it found it"
        assert all(p.grad is None for p in model.parameters()), "maps() must not leave gradients"
        hooks = [m for m in model.modules() if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks]
        assert not hooks, "maps() must not leave hooks behind"

    def test_training_losses_are_finite_and_reach_the_backbone(self, method, model):
        import torch

        from wsbench.methods import Batch, LossTerm, Progress, create_method

        trainer_name, trainer_options = method.classifier()
        trainer = create_method(trainer_name, **trainer_options)
        t = trainer.clip_length()
        clips = 2
        images = self.images(model, clips * t)
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).repeat_interleave(t, dim=0)
        flows = torch.zeros(clips, t, 2, 2, self.size // 4, self.size // 4) if t > 1 else None
        progress = Progress(epoch=1, step=10, steps_per_epoch=10, total_steps=40, alpha=1.0, beta=1.0)
        terms = trainer.training_losses(model, Batch(images, labels, clip_len=t, flows=flows), progress)
        assert terms and all(isinstance(term, LossTerm) for term in terms.values())
        total = sum((term.value * term.weight for term in terms.values()), torch.zeros(()))
        assert total.dim() == 0 and torch.isfinite(total)
        total.backward()
        first = next(model.backbone.parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0

    def test_fusion_is_none_or_valid(self, spec, method):
        from wsbench.methods import METHODS

        fusion = method.fusion()
        if fusion is not None:
            assert fusion.neighbours >= 1 and fusion.mode in ("max", "mean")
            assert METHODS.entry(spec[0]).meta.needs_video


# -- flow estimators ----------------------------------------------------------------------------
def textured_pair(size: int = 64, shift: tuple[int, int] = (3, 2), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed RGB noise and the same image moved by ``shift = (x, y)`` pixels (wrapping around).

    Args:
        size: side of the square frames.
        shift: the motion from the first frame to the second, ``(u, v)`` in pixels.
        seed: noise seed.

    Returns:
        ``(src, dst)``, RGB ``uint8`` ``(1, size, size, 3)`` each, with ``dst(x + shift) = src(x)``.
    """
    import cv2

    noise = np.random.default_rng(seed).normal(size=(size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    src = (smooth * 255).round().astype(np.uint8)
    dst = np.roll(src, shift=(shift[1], shift[0]), axis=(0, 1))
    return src[None], dst[None]


class FlowContract:
    """Checks of one registered flow estimator on textured frames with a known shift.

    An estimator that computes flow from frames (``estimator(src, dst)``) must return ``float32``
    ``(N, H, W, 2)`` finite flow, zero flow for identical frames, and a known shift in the
    convention of :mod:`wsbench.flow` (``src(x) ≈ dst(x + flow(x))``, so the flow back is the
    negated shift), within ``tolerance`` pixels (median over the interior). An estimator that reads
    precomputed files (it has ``video_flows``, like ``files``) must read a tree of ``.flo`` files
    back at another resolution, scaled, with the backward flow the negated forward one.

    Attributes:
        name: the estimator's registry name.
        options: its options for the checks.
        size: side of the checked frames (pixels).
        shift: the known motion ``(u, v)`` in pixels.
        tolerance: allowed error of zero and shift flows (pixels, median over the interior).
        accurate: ``False`` for an estimator whose checked instance cannot be expected to find
            motion (e.g. a network with random weights); only the form of its output is checked.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    size: ClassVar[int] = 64
    shift: ClassVar[tuple[int, int]] = (3, 2)
    tolerance: ClassVar[float] = 0.5
    accurate: bool = True  # an instance may set it, e.g. when it falls back to random weights

    @pytest.fixture
    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of the estimator under test; override with ``params`` to check many."""
        return self.name, dict(self.options)

    @pytest.fixture
    def estimator(self, spec):
        """The estimator built from ``spec``."""
        from wsbench.flow import create_flow

        name, options = spec
        return create_flow(name, **options)

    def _frames_only(self, estimator: Any) -> None:
        if hasattr(estimator, "video_flows"):
            pytest.skip(f"{estimator!r} reads precomputed files; see test_reads_flo_files_back")

    def _accurate_only(self) -> None:
        if not self.accurate:
            pytest.skip("this estimator instance is not expected to find motion (accurate = False)")

    def _interior_median(self, flow: np.ndarray) -> np.ndarray:
        margin = max(abs(self.shift[0]), abs(self.shift[1])) + 6  # np.roll wraps the border around
        return np.median(flow[:, margin:-margin, margin:-margin].reshape(-1, 2), axis=0)

    def test_registered_with_description_and_docstring(self, spec):
        from wsbench.flow import FLOWS

        entry = FLOWS.entry(spec[0])
        assert entry.meta.description, f"flow {spec[0]!r} has no description"
        assert entry.obj.__doc__ and entry.obj.__doc__.strip()

    def test_output_shape_dtype_and_finite(self, estimator):
        from wsbench.flow import FlowEstimator

        self._frames_only(estimator)
        assert isinstance(estimator, FlowEstimator)
        src, dst = textured_pair(self.size, self.shift)
        src2, dst2 = textured_pair(self.size, self.shift, seed=1)
        flow = np.asarray(estimator(np.concatenate([src, src2]), np.concatenate([dst, dst2])))
        assert flow.shape == (2, self.size, self.size, 2) and flow.dtype == np.float32
        assert np.isfinite(flow).all()

    def test_identical_frames_give_zero_flow(self, estimator):
        self._frames_only(estimator)
        self._accurate_only()
        src, _ = textured_pair(self.size, self.shift)
        flow = np.asarray(estimator(src, src.copy()))
        assert np.abs(self._interior_median(flow)).max() <= self.tolerance

    def test_known_shift_forward_and_backward(self, estimator):
        self._frames_only(estimator)
        self._accurate_only()
        src, dst = textured_pair(self.size, self.shift)
        forward = self._interior_median(np.asarray(estimator(src, dst)))
        backward = self._interior_median(np.asarray(estimator(dst, src)))
        assert np.allclose(forward, self.shift, atol=self.tolerance), f"flow src -> dst {forward}, moved {self.shift}"
        assert np.allclose(backward, np.negative(self.shift), atol=self.tolerance), \
            f"flow dst -> src {backward}, expected {np.negative(self.shift)}"

    def test_whole_video_flows_in_both_directions(self, estimator):
        from wsbench.flow import estimate_video_flows

        self._frames_only(estimator)
        self._accurate_only()
        src, dst = textured_pair(self.size, self.shift)
        forward, backward = estimate_video_flows(np.concatenate([src, dst]), estimator)
        assert np.allclose(self._interior_median(forward[:1]), self.shift, atol=self.tolerance)
        assert np.allclose(self._interior_median(backward[1:]), np.negative(self.shift), atol=self.tolerance)
        assert not forward[1].any() and not backward[0].any(), "no neighbour: zero flow"

    def test_reads_flo_files_back(self, estimator, tmp_path):
        """File readers: a ``.flo`` tree of a constant motion, read back at half the resolution."""
        import cv2

        from wsbench.data import Video, VideoIndex
        from wsbench.data.io import ImageFiles
        from wsbench.flow import flo_path, write_flo

        if not hasattr(estimator, "video_flows"):
            pytest.skip(f"{estimator!r} computes flow from frames")
        src, dst = textured_pair(self.size, self.shift)
        paths = []
        for n, frame in enumerate((src[0], dst[0], src[0])):
            paths.append(tmp_path / "data" / "before" / "v0" / f"frame_{n}.png")
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(paths[-1]), frame[..., ::-1])
        # the files where the layout keeps them (Video.flow_files), or in the estimator's own tree
        layout = [tmp_path / "layout" / f"frame_{n}.flo" for n in range(2)]
        video = Video("before", "v0", ImageFiles(paths), flow_files=layout)
        index = VideoIndex("contract", tmp_path / "data", [video])
        root = getattr(estimator, "root", None)
        for n, motion in enumerate((self.shift, np.negative(self.shift))):
            path = flo_path(root, index, video, n) if root is not None else layout[n]
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flo(path, np.broadcast_to(np.asarray(motion, np.float32), (self.size, self.size, 2)))
        half = (self.size // 2, self.size // 2)
        forward, backward = estimator.video_flows(index, video, half)
        assert forward.shape == backward.shape == (3, *half, 2) and forward.dtype == np.float32
        assert np.allclose(forward[0], np.divide(self.shift, 2)) and np.allclose(forward[1], np.divide(self.shift, -2))
        assert not forward[2].any() and not backward[0].any(), "no neighbour: zero flow"
        assert np.array_equal(backward[1:], -forward[:-1]), "the flow back is the negated file of the previous frame"


# -- data sets ----------------------------------------------------------------------------------
class DatasetContract:
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

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
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
    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of the data set under test; override with ``params`` to check many."""
        return self.name, dict(self.options)

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
