"""``gradcam``: GradCAM (or any method of the grad-cam package) on a standard image classifier.

Grad-CAM explains a standard classifier: the backbone, global average pooling and a linear layer
with bias (``head = "linear"``, what ``timm.create_model(name, num_classes=C)`` gives), trained with
the classification loss on the same data and recipe as every other method. That is what the
authors' code does (a torchvision ResNet-50 with its usual head, trained apart from the CAM
network). On the paper's CAM network (bias-free 1×1 class-map head, average pooling) Grad-CAM at the
last layer would *be* the CAM, so this column would repeat ``cam``'s. All ``--cam`` variants share
one classifier, and Frame-to-Frame explains the same one.

The maps come from ``pytorch-grad-cam`` with the backbone's output (the last stage) as target layer
and the *before* logit as target. That package has side effects (it puts the model in eval mode, zeroes
and leaves gradients, and keeps hooks until released); it is only ever called here, at
evaluation time, inside a ``with`` block, and gradients are cleared afterwards.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from . import register_method
from .base import Method

if TYPE_CHECKING:
    import torch

    from ..model import CamNet

__all__ = ["GradCam", "GRADCAM_TYPES", "gradcam_maps"]

#: ``--cam`` choices → class name in ``pytorch_grad_cam``
GRADCAM_TYPES = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
}
CamType = Literal["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "eigengradcam",
                  "scorecam", "ablationcam"]


def gradcam_maps(model: CamNet, images: torch.Tensor, target: int, cam: str = "gradcam") -> torch.Tensor:
    """Maps of one grad-cam family method for class ``target``.

    Args:
        model: the classifier (its train/eval mode is restored afterwards).
        images: normalised frames (B, 3, H, W).
        target: class index.
        cam: a key of :data:`GRADCAM_TYPES`.

    Returns:
        (B, H, W) maps in [0, 1] (grad-cam normalises each map and returns it at input size).
    """
    import pytorch_grad_cam
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class _Logits(torch.nn.Module):
        """The classifier as grad-cam expects it: images → logits."""

        def __init__(self, model: CamNet) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.pool(self.model(x))

    extractor_cls = getattr(pytorch_grad_cam, GRADCAM_TYPES[cam])
    was_training = model.training
    try:
        with extractor_cls(model=_Logits(model), target_layers=[model.backbone]) as extractor, torch.enable_grad():
            maps = extractor(input_tensor=images, targets=[ClassifierOutputTarget(target)] * images.shape[0])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return torch.from_numpy(maps).to(images.device).clamp_(0, 1)


@dataclasses.dataclass(frozen=True)
class GradCamOptions:
    """Options of ``gradcam``."""

    cam: CamType = dataclasses.field(default="gradcam", metadata={"help": "which grad-cam method"})


@register_method("gradcam", display_name="GradCAM", needs_grad=True,
                 description="GradCAM (or --cam gradcam++|layercam|...) on a standard classifier (pooling + linear)")
class GradCam(Method):
    """GradCAM on a standard image classifier (the paper's Table 1 GradCAM column).

    Trains with the classification loss only (the :class:`~wsbench.methods.base.Method` default)
    a classifier with a ``"linear"`` head.
    """

    Options = GradCamOptions
    head = "linear"

    def classifier(self) -> tuple[str, dict]:
        """One standard classifier for every ``--cam`` variant (the option changes only the maps)."""
        return "gradcam", {}

    def maps(self, model: CamNet, images: torch.Tensor) -> torch.Tensor:
        """GradCAM maps of class *before* at input resolution."""
        return gradcam_maps(model, images, model.class_index(self.target), self.options.cam)
