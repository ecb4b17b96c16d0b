"""The segmenter network (an smp model) and its maps as the evaluator reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .recipe import DistillRecipe

__all__ = ["SegmenterMaps", "SegmenterNet"]

#: class index of the segmenter's output per classifier class name (the evaluator asks for these)
_CLASS_INDEX = {"background": 0, "after": 1, "before": 2}
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class SegmenterNet(nn.Module):
    """An smp segmentation network with what the evaluator asks of a classifier.

    Attributes:
        net: the smp model, 3 output classes (0 background, 1 legal, 2 illegal).
        classes: the classifier class names the evaluator may ask maps of (``before`` is *illegal*,
            ``after`` *legal*, ``background`` the belt).
    """

    classes = ("after", "before", "background")
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, recipe: DistillRecipe) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        kwargs: dict[str, Any] = {"encoder_depth": recipe.encoder_depth}
        if recipe.decoder_channels:
            kwargs["decoder_channels"] = tuple(recipe.decoder_channels)
        try:
            self.net = smp.create_model(recipe.architecture, encoder_name=recipe.encoder, encoder_weights=None,
                                        classes=3, **kwargs)
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            message = str(err).strip("'\"").splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"segmenter {recipe.architecture} with encoder {recipe.encoder}: {message}") from None
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0–255 float) images (B, 3, H, W) → normalised float input."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3, H, W)."""
        return self.net(x)

    def load_encoder(self, path: str | Path) -> None:
        """Load a local state dict into the encoder (``--pretrained``); keys may carry an ``encoder.`` prefix."""
        from ..files import load_torch, state_dict_of

        state = state_dict_of(load_torch(path, "--pretrained "), path, "--pretrained ", keys=("state_dict",))
        state = {k.removeprefix("encoder."): v for k, v in state.items()}
        encoder = self.net.encoder
        target = encoder.model if hasattr(encoder, "model") else encoder  # timm encoders wrap a timm model
        if not set(state) & set(target.state_dict()):
            raise UserError(f"--pretrained {path}: none of its keys fit the encoder {type(target).__name__}")
        try:
            target.load_state_dict(state, strict=False)  # a classifier's head (fc.*) is not part of the encoder
        except RuntimeError as err:
            last = str(err).splitlines()[-1].strip()
            raise UserError(f"--pretrained {path}: does not fit the encoder ({last})") from None


class SegmenterMaps:
    """The segmenter's class probabilities as maps, so the evaluator scores it like any run: a
    :class:`~wsbench.maps.MapSource` (not a registered method).

    ``maps`` of target ``before`` is the probability of *illegal*, ``after`` of *legal*,
    ``background`` of the belt (softmax over the three outputs, at input resolution). No fusion,
    no autograd.

    Args:
        name: the distilled run's method name (shown in progress bars).
    """

    target: str = "before"  # the evaluator sets it on a copy for another class's maps

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def needs_grad(self) -> bool:
        """``False``: the maps are a forward pass."""
        return False

    def maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W) probability of the class :attr:`target` stands for."""
        return torch.softmax(model(images).float(), dim=1)[:, _CLASS_INDEX[self.target]]

    def raw_maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """The same probabilities (a segmenter has no unnormalised maps)."""
        return self.maps(model, images)

    def fusion(self) -> None:
        """No temporal fusion: one forward pass per frame."""
        return
