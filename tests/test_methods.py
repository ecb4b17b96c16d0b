"""The contract every CAM method keeps, checked by one base class that each method's test subclasses.

Like segmentation_models_pytorch's per-architecture tests: a new method (built-in or plugin) gets
these checks by writing ``class TestMine(MethodContract): name = "mine"``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wsbench.methods import METHODS, Batch, LossTerm, Progress, create_method, method_options
from wsbench.model import CamNet


class MethodContract:
    """Checks of one registered method on a tiny random classifier (no data, no training)."""

    name: str = ""
    options: dict = {}
    batch: int = 2
    size: int = 32

    @pytest.fixture
    def method(self):
        return create_method(self.name, **self.options)

    @pytest.fixture
    def model(self):
        torch.manual_seed(0)
        return CamNet("wsbench_resnet_tiny", output_stride=8)

    def images(self, model: CamNet, n: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1)
        raw = torch.randint(0, 256, (n or self.batch, 3, self.size, self.size), generator=gen)
        return model.normalize(raw)

    def test_registered_with_docstring_and_frozen_options(self, method):
        entry = METHODS.entry(self.name)
        assert entry.meta.description
        assert type(method).__doc__ and type(method).__doc__.strip()
        assert dataclasses.is_dataclass(method.Options)
        assert method.Options.__dataclass_params__.frozen
        for spec in method_options(self.name):
            assert spec.help, f"option {spec.name} of {self.name} has no help text"

    def test_classifier_is_a_registered_training_recipe(self, method):
        trainer_name, trainer_options = method.classifier()
        trainer = create_method(trainer_name, **trainer_options)
        assert trainer.classifier() == (trainer_name, trainer_options), "the trainer must own its recipe"
        if not METHODS.entry(self.name).meta.trains:
            assert trainer_name != self.name
        if trainer.clip_length() > 1:
            assert METHODS.entry(self.name).meta.needs_video

    def test_maps_shape_range_and_no_side_effects(self, method, model):
        model.train()
        images = self.images(model)
        grad = torch.enable_grad() if METHODS.entry(self.name).meta.needs_grad else torch.no_grad()
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
        total = sum(term.value * term.weight for term in terms.values())
        assert total.dim() == 0 and torch.isfinite(total)
        total.backward()
        first = next(model.backbone.parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0

    def test_fusion_is_none_or_valid(self, method):
        fusion = method.fusion()
        if fusion is not None:
            assert fusion.neighbours >= 1 and fusion.mode in ("max", "mean")
            assert METHODS.entry(self.name).meta.needs_video


class TestCam(MethodContract):
    name = "cam"


class TestGradCam(MethodContract):
    name = "gradcam"


class TestLayerCam(MethodContract):
    name = "gradcam"
    options = {"cam": "layercam"}


class TestFrameToFrame(MethodContract):
    name = "f2f"


class TestPuzzleCam(MethodContract):
    name = "puzzlecam"


class TestTcCam(MethodContract):
    name = "tccam"


class TestTcCamTriplets(MethodContract):
    name = "tccam"
    options = {"batching": "triplet"}


class TestOnlyTemporal(MethodContract):
    name = "tccam"
    options = {"spatial": False}


def test_every_builtin_method_has_a_contract_test():
    tested = {cls.name for cls in MethodContract.__subclasses__()}
    builtin = {e.name for e in METHODS.entries() if e.source == "built-in"}
    assert builtin <= tested, f"add a MethodContract subclass for {sorted(builtin - tested)}"
