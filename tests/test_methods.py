"""The contract every CAM method keeps, checked by one base class that each method's test subclasses.

Like segmentation_models_pytorch's per-architecture tests: a new method (built-in or plugin) gets
these checks by writing ``class TestMine(MethodContract): name = "mine"``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import cv2
import numpy as np

from wsbench.methods import METHODS, Batch, LossTerm, Progress, create_method, create_trainer, method_options
from wsbench.methods.gradcam import gradcam_maps
from wsbench.model import CamNet, cam_from_class_maps


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
    def model(self, method):
        torch.manual_seed(0)
        return CamNet("wsbench_resnet_tiny", output_stride=8, head=create_trainer(method).head)

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
        progress = Progress(epoch=2, step=20, steps_per_epoch=10, total_steps=40)  # loss weights at their max
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


# -- GradCAM explains a standard classifier, not the CAM network ------------------------------------
def test_gradcam_trains_its_own_standard_classifier():
    cam, gradcam, f2f = create_method("cam"), create_method("gradcam"), create_method("f2f")
    assert gradcam.classifier() != cam.classifier(), "gradcam must not explain cam's class-map network"
    assert f2f.classifier() == gradcam.classifier() == create_method("gradcam", cam="layercam").classifier()
    assert create_trainer(gradcam).head == "linear" and create_trainer(cam).head == "classmap"
    assert METHODS.entry("gradcam").meta.trains and not METHODS.entry("f2f").meta.trains
    standard = CamNet("wsbench_resnet_tiny", output_stride=8, pool="lse", head="linear")
    assert isinstance(standard.head, torch.nn.Linear) and standard.head.bias is not None
    assert standard.pool_type == "gap", "a standard classifier pools by global average"


def test_linear_head_logits_are_pool_then_linear():
    torch.manual_seed(0)
    model = CamNet("wsbench_resnet_tiny", output_stride=8, head="linear").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.backbone(x)
        reference = features.mean(dim=(2, 3)) @ model.head.weight.T + model.head.bias  # timm's avg pool + fc
        assert torch.allclose(model.pool(model(x)), reference, atol=1e-5)


def _minmax_at(maps: torch.Tensor, size: int) -> np.ndarray:
    """grad-cam's post-processing restated: ReLU, min-max per image, bilinear resize to the input, min-max."""
    def minmax(m: np.ndarray) -> np.ndarray:
        m = m - m.min()
        return m / (m.max() + 1e-7)

    return np.stack([minmax(cv2.resize(minmax(np.maximum(m, 0)).astype(np.float32), (size, size)))
                     for m in maps.detach().numpy()])


def test_gradcam_equals_cam_only_on_the_bias_free_gap_network():
    """Grad-CAM at the last layer of GAP + bias-free 1×1 head is the CAM (why the column repeated);
    on a standard classifier with a bias it is ReLU(W·f) and its CAM, ReLU(W·f + b), differs."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    classmap = CamNet("wsbench_resnet_tiny", output_stride=8).eval()
    with torch.no_grad():
        cam = classmap(x)[:, 0]
    assert np.allclose(gradcam_maps(classmap, x, 0).numpy(), _minmax_at(cam, 32), atol=1e-4)

    standard = CamNet("wsbench_resnet_tiny", output_stride=8, head="linear").eval()
    with torch.no_grad():
        standard.head.bias.copy_(torch.tensor([0.5, -0.2, 0.1]))
        features = standard.backbone(x)
        w_f = torch.einsum("c,bchw->bhw", standard.head.weight[0], features)
        own_cam = cam_from_class_maps(standard(x), 0)
    grad = gradcam_maps(standard, x, 0).numpy()
    assert np.allclose(grad, _minmax_at(w_f, 32), atol=1e-4)
    cam_at_input = np.stack([cv2.resize(m, (32, 32)) for m in own_cam.numpy()])
    assert np.abs(grad - cam_at_input).max() > 0.05, "GradCAM and CAM maps of the same frames should differ here"


def test_f2f_defaults_to_the_published_union_and_labels_the_mean_variant():
    from wsbench.methods import method_info
    from wsbench.report import column_label

    assert create_method("f2f").fusion().mode == "max"
    mean = create_method("f2f", aggregate="mean")
    label = column_label({"method": "f2f", "config": {"method_options": dataclasses.asdict(mean.options),
                                                      "fusion": dataclasses.asdict(mean.fusion()),
                                                      "method_info": method_info(mean)}})
    assert label == "Frame-to-Frame --aggregate mean"
