"""``f2f``: Frame-to-Frame aggregation (Lee et al., ICCV 2019) as post-processing of GradCAM maps.

The paper compares against "Grad-CAM and its extension incorporating temporal coherence
(Frame-to-frame)", and no public code of F2F exists, so wsbench implements it as: the per-frame
maps of the standard classifier that ``gradcam`` trains (GradCAM by default, ``--base cam`` for its
CAM), and for frame t the maps of frames t±1 … t±k warped into t with the cached optical flow
(chained one step at a time, see :func:`wsbench.flow.warp_chain`) and aggregated with the frame's
own map by pixel-wise max, F2F's union of active regions (the published definition, hence the
default). ``--aggregate mean`` is a variant of ours, not F2F: tables label it as its own column.
Nothing is trained.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from . import register_method
from .base import Fusion, Method
from .gradcam import gradcam_maps

if TYPE_CHECKING:
    import torch

    from ..model import CamNet

__all__ = ["FrameToFrame"]


@dataclasses.dataclass(frozen=True)
class F2FOptions:
    """Options of ``f2f``."""

    neighbours: int = dataclasses.field(default=2, metadata={"help": "frames on each side warped into t"})
    aggregate: Literal["max", "mean"] = dataclasses.field(
        default="max", metadata={"help": "how maps are fused (max: F2F's union; mean: a variant)"})
    base: Literal["gradcam", "cam"] = dataclasses.field(default="gradcam", metadata={"help": "per-frame maps"})

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError("--neighbours must be at least 1")


@register_method("f2f", display_name="Frame-to-Frame", trains=False, needs_grad=True, needs_video=True,
                 description="Frame-to-Frame: GradCAM maps of neighbours warped by flow and max-fused")
class FrameToFrame(Method):
    """Frame-to-Frame: flow-warped aggregation of neighbouring frames' maps at inference."""

    Options = F2FOptions

    def classifier(self) -> tuple[str, dict]:
        """Post-processing only: explains ``gradcam``'s standard classifier."""
        return "gradcam", {}

    def maps(self, model: CamNet, images: torch.Tensor) -> torch.Tensor:
        """Per-frame maps before fusion (GradCAM or CAM)."""
        from ..model import cam_from_class_maps

        target = model.class_index(self.target)
        if self.options.base == "cam":
            return cam_from_class_maps(model(images), target)
        return gradcam_maps(model, images, target)

    def fusion(self) -> Fusion:
        """Fuse ±``neighbours`` frames with ``aggregate``."""
        return Fusion(self.options.neighbours, self.options.aggregate)
