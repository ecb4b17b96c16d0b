"""``puzzlecam``: PuzzleCAM (Jo & Yu, ICIP 2021), the paper's spatial module (§4.3).

The input is tiled 2×2, the tiles go through the backbone, and their class maps are merged back
into f_puzzle. Training minimises L_cls + L_p-cls + α·L_spatial with L_spatial = ‖f − f_puzzle‖₁
on the raw class maps restricted to the image's classes, following the official code's
conventions (see :mod:`wsbench.losses`). α follows the trainer's schedule (0 for the first epoch,
then linear to ``--alpha-max`` by mid-training). Maps are plain CAMs of the trained classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError
from . import register_method
from .base import Batch, LossTerm, Method, Progress

if TYPE_CHECKING:
    import torch

    from ..model import CamNet

__all__ = ["PuzzleCam", "puzzle_terms"]


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


@register_method("puzzlecam", description="PuzzleCAM: 2x2 tiles, L_cls + L_p-cls + alpha * L_spatial")
class PuzzleCam(Method):
    """PuzzleCAM: spatial consistency between an image's class maps and its tiles'."""

    def training_losses(self, model: CamNet, batch: Batch, progress: Progress) -> dict[str, LossTerm]:
        """L_cls + L_p-cls + α·L_spatial (paper eq. 5–7)."""
        return puzzle_terms(model, batch.images, batch.labels, model(batch.images), progress.alpha)
