"""Methods: the contract (:class:`wsbench.testing.MethodContract`) over every built-in method, and
the checks of single methods.

Like segmentation_models_pytorch's per-architecture tests: a new method (built-in or plugin) gets
the contract's checks by writing ``class TestMine(MethodContract): name = "mine"``; the built-in
ones are listed from the registry below, so a new built-in method is checked without a new line.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from wsbench.methods import METHODS, create_method, create_trainer
from wsbench.methods.gradcam import gradcam_maps
from wsbench.model import CamNet, cam_from_class_maps
from wsbench.testing import MethodContract

# every built-in method with its default options, and the options that take another code path
BUILTIN_METHODS = [e.name for e in METHODS.entries() if e.source == "built-in"]
VARIANTS = [(name, {}) for name in BUILTIN_METHODS] + [
    ("gradcam", {"cam": "layercam"}),
    ("tccam", {"batching": "triplet"}),
    ("tccam", {"spatial": False}),
]


class TestBuiltinMethods(MethodContract):
    """Every built-in method (and the variants above) keeps :class:`wsbench.testing.MethodContract`."""

    @pytest.fixture(params=VARIANTS, ids=lambda v: "-".join([v[0], *(f"{k}={x}" for k, x in v[1].items())]))
    def spec(self, request):
        return request.param


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
    from wsbench.report import column_label

    assert create_method("f2f").fusion().mode == "max"
    mean = create_method("f2f", aggregate="mean")
    label = column_label({"method": "f2f", "config": {"method_options": dataclasses.asdict(mean.options),
                                                      "fusion": dataclasses.asdict(mean.fusion())}})
    assert label == "Frame-to-Frame --aggregate mean"


def test_wsbench_never_imports_its_testing_module_or_pytest():
    """``wsbench.testing`` (which imports pytest) is for tests: the library and the CLI run without pytest."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, wsbench.cli, wsbench.pipeline, wsbench.flow, wsbench.data, wsbench.methods; "
            "print(sorted(m for m in sys.modules if m == 'pytest' or m == 'wsbench.testing'))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
