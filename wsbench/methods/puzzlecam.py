"""``puzzlecam``: PuzzleCAM (Jo & Yu, ICIP 2021), the paper's spatial module (§4.3).

The input is tiled 2×2, the tiles go through the backbone, and their class maps are merged back
into f_puzzle. Training minimises L_cls + L_p-cls + α·L_spatial with L_spatial = ‖f − f_puzzle‖₁
on the raw class maps restricted to the image's classes, following the official code's
conventions (see :mod:`wsbench.losses`). α is PuzzleCAM's own option: 0 for the first epoch, then
linear to ``--alpha-max`` by mid-training (``--weight-ramp ramp``, the paper's), linear from step 0
to ``--alpha-max`` at mid-training (``linear``, the official PuzzleCAM code's schedule), or
``--alpha-max`` throughout (``constant``, the WS-WS authors' code); so it is part of PuzzleCAM's
classifier key and of no other method's. Maps are plain CAMs of the trained classifier.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Literal

from ..errors import UserError
from . import register_method
from .base import Batch, LossTerm, Method, Progress

if TYPE_CHECKING:
    import torch

    from ..model import CamNet

__all__ = ["PuzzleCam", "PuzzleCamOptions", "puzzle_terms"]


def _check_weight(value: float, flag: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{flag} must be a number >= 0, not {value}")


@dataclasses.dataclass(frozen=True)
class PuzzleCamOptions:
    """Options of ``puzzlecam``: the weight of its spatial loss."""

    alpha_max: float = dataclasses.field(default=4.0, metadata={"help": "max weight of the spatial loss"})
    weight_ramp: Literal["ramp", "linear", "constant"] = dataclasses.field(
        default="ramp",
        metadata={"help": "loss weights: ramp: 0 for epoch 1 then linear to max by mid-training (the paper); "
                          "linear: from 0 at step 0 to max by mid-training (official PuzzleCAM code); constant"})

    def __post_init__(self) -> None:
        _check_weight(self.alpha_max, "--alpha-max")


def puzzle_terms(model: CamNet, images: torch.Tensor, labels: torch.Tensor, class_maps: torch.Tensor,
                 alpha: float) -> dict[str, LossTerm]:
    """PuzzleCAM's loss terms for images whose full class maps are already computed.

    Args:
        model: the classifier.
        images: normalised inputs (B, 3, H, W); H and W must be multiples of 2 × output stride.
        labels: (B, C) multi-hot labels.
        class_maps: f of the full images (B, C, h, w).
        alpha: weight of the spatial term.

    Returns:
        ``{"cls", "p-cls", "spatial"}`` loss terms.
    """
    from ..losses import classification_loss, merge, spatial_loss, tile

    h, w = images.shape[-2:]
    if h % (2 * model.output_stride) or w % (2 * model.output_stride):
        raise UserError(f"PuzzleCAM tiles need an image size that is a multiple of {2 * model.output_stride} "
                        f"(2 × output stride), got {w}x{h}")
    merged = merge(model(tile(images)))
    return {
        "cls": LossTerm(classification_loss(model.pool(class_maps), labels)),
        "p-cls": LossTerm(classification_loss(model.pool(merged), labels)),
        "spatial": LossTerm(spatial_loss(class_maps, merged, labels), alpha),
    }


@register_method("puzzlecam", display_name="PuzzleCAM",
                 description="PuzzleCAM: 2x2 tiles, L_cls + L_p-cls + alpha * L_spatial")
class PuzzleCam(Method):
    """PuzzleCAM: spatial consistency between an image's class maps and its tiles'."""

    Options = PuzzleCamOptions

    def alpha(self, progress: Progress) -> float:
        """α at this point of training (:func:`wsbench.losses.ramp_weight` of ``alpha_max``)."""
        from ..losses import ramp_weight

        return ramp_weight(self.options.alpha_max, progress, self.options.weight_ramp)

    def modules(self) -> tuple[bool, bool] | None:
        """The spatial module only."""
        return True, False

    def training_losses(self, model: CamNet, batch: Batch, progress: Progress) -> dict[str, LossTerm]:
        """L_cls + L_p-cls + α·L_spatial (paper eq. 5–7)."""
        return puzzle_terms(model, batch.images, batch.labels, model(batch.images), self.alpha(progress))
