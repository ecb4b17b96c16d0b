"""The contract every method keeps (:class:`MethodContract`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from ._base import Contract

__all__ = ["MethodContract"]


class MethodContract(Contract):
    """Checks of one registered method on a tiny random classifier (no data, no training).

    Attributes:
        name: the method's registry name.
        options: its options for the checks.
        batch: images per checked batch.
        size: side of the checked images (pixels).
    """

    batch: ClassVar[int] = 2
    size: ClassVar[int] = 32

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
        progress = Progress(epoch=2, step=20, steps_per_epoch=10, total_steps=40)  # loss weights at their max
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
