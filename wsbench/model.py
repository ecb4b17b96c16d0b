"""The classifiers methods train: a timm backbone and a head to class maps.

``CamNet(images) -> f`` returns the class maps f (B, C, h, w) of paper eq. (2); ``pool(f)`` gives
the logits. Two heads:

- ``"classmap"`` (the paper's CAM network): a bias-free 1×1 convolution to class maps, pooled by
  global average (paper) or log-sum-exp pooling. CAMs are read straight off f, so native CAMs cost
  one forward pass and no autograd.
- ``"linear"`` (a standard image classifier, what ``timm.create_model(name, num_classes=C)``
  gives and what Grad-CAM explains in the paper): global average pooling of the features, then a
  linear layer with bias. ``forward`` still returns per-pixel class maps W·f + b, whose average is
  exactly the standard classifier's logit (the linear layer commutes with the average), so the same
  code trains and evaluates both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import timm
import torch
import torch.nn.functional as F
from torch import nn

from . import backbones  # noqa: F401  (registers wsbench's small backbones in timm)
from .errors import UserError
from .files import load_torch, state_dict_of
from .recipes import Recipe

__all__ = ["HEADS", "CamNet", "build_model", "cam_from_class_maps", "load_pretrained", "load_weights"]


HEADS = ("classmap", "linear")


class CamNet(nn.Module):
    """timm backbone + a head producing one map per class.

    Args:
        backbone: any timm model name that supports ``output_stride`` (ResNets, ResNeSts, …).
        classes: class names in head order, e.g. ``("before", "after", "background")``.
        output_stride: 8, 16 or 32; smaller gives denser maps.
        pool: ``"gap"`` (global average pooling, the paper's) or ``"lse"`` (log-sum-exp, r = 5);
            the ``"linear"`` head always averages (a standard classifier's global pooling).
        pretrained: ``None`` (random init), a local weights file, or ``"timm"`` for weights
            already in the local timm/Hugging Face cache (never downloaded).
        head: ``"classmap"`` (bias-free 1×1 convolution, the paper's CAM network) or ``"linear"``
            (global average pooling + linear layer with bias, a standard image classifier).
    """

    mean: torch.Tensor  # buffers (register_buffer): the backbone's input normalisation × 255
    std: torch.Tensor

    def __init__(self, backbone: str = "resnet50", classes: Sequence[str] = ("before", "after", "background"),
                 output_stride: int = 16, pool: str = "gap", pretrained: str | None = None,
                 head: str = "classmap") -> None:
        super().__init__()
        if pool not in ("gap", "lse"):
            raise UserError(f"--pool must be gap or lse, not {pool!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        self.backbone = _create_backbone(backbone, output_stride, pretrained)
        features = cast(int, self.backbone.num_features)  # every timm model has num_features
        self.head: nn.Linear | nn.Conv2d
        if head == "linear":
            self.head = nn.Linear(features, len(classes))
            pool = "gap"
        else:
            self.head = nn.Conv2d(features, len(classes), kernel_size=1, bias=False)
        self.head_type = head
        self.classes = tuple(classes)
        self.pool_type = pool
        self.output_stride = output_stride
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0–255 float) images (B, 3, H, W) → normalised float input."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class maps f = head(backbone(x)) of shape (B, C, H/stride, W/stride)."""
        features = self.backbone(x)
        if self.head_type == "linear":  # the linear layer applied at every pixel
            return F.conv2d(features, self.head.weight[:, :, None, None], self.head.bias)
        return self.head(features)

    def pool(self, class_maps: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) from class maps."""
        if self.pool_type == "gap":
            return class_maps.mean(dim=(2, 3))
        r = 5.0
        flat = class_maps.flatten(2)
        return (torch.logsumexp(r * flat, dim=2) - torch.log(torch.tensor(float(flat.shape[2])))) / r

    def class_index(self, name: str) -> int:
        """Head channel of class ``name``."""
        return self.classes.index(name)


def cam_from_class_maps(class_maps: torch.Tensor, channel: int | torch.Tensor) -> torch.Tensor:
    """CAM of paper eq. (8): ReLU of a class map divided by its maximum (per image).

    Args:
        class_maps: (B, C, h, w).
        channel: a class index, or a (B,) tensor with one class index per image.

    Returns:
        (B, h, w) maps in [0, 1].
    """
    if isinstance(channel, int):
        maps = class_maps[:, channel]
    else:
        maps = class_maps[torch.arange(class_maps.shape[0], device=class_maps.device), channel]
    maps = F.relu(maps)
    return maps / (maps.flatten(1).amax(dim=1).view(-1, 1, 1) + 1e-5)


def _create_backbone(name: str, output_stride: int, pretrained: str | None) -> nn.Module:
    if name not in timm.list_models() and not timm.is_model(name):
        raise UserError(f"unknown backbone {name!r}; see timm.list_models() (e.g. resnet50, resnet18)")
    use_timm_weights = pretrained == "timm"
    if use_timm_weights:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
    try:
        model = timm.create_model(name, pretrained=use_timm_weights, num_classes=0, global_pool="",
                                  output_stride=output_stride)
    except TypeError as err:
        raise UserError(f"backbone {name!r} does not support output_stride ({err})") from None
    except Exception as err:  # timm/hub errors when weights are not cached
        if use_timm_weights:
            raise UserError(f"--pretrained timm: weights of {name!r} are not in the local cache "
                            f"({type(err).__name__}); pass a weights file instead") from None
        raise
    if pretrained and not use_timm_weights:
        load_pretrained(model, Path(pretrained), name)
    return model


def load_pretrained(model: nn.Module, path: Path, name: str = "backbone") -> None:
    """Load a local weights file into a timm backbone (the classifier layer is ignored).

    Accepts a plain state dict or a checkpoint with ``state_dict``/``model`` inside; a
    ``module.`` (DDP) or ``backbone.`` prefix is stripped.

    Raises:
        UserError: missing file, unreadable file, or weights of another architecture.
    """
    if path.is_dir():
        raise UserError(f"--pretrained {path}: is a folder, not a weights file")
    if not path.is_file():
        raise UserError(f"--pretrained {path}: file not found")
    state = state_dict_of(load_torch(path, "--pretrained "), path, "--pretrained ", keys=("state_dict", "model"))
    cleaned = {}
    for k, v in state.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        cleaned[k] = v
    own = model.state_dict()
    usable = {k: v for k, v in cleaned.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable]
    if missing:
        raise UserError(f"--pretrained {path}: weights do not fit backbone {name!r} "
                        f"({len(missing)} of {len(own)} tensors missing or of another shape, e.g. {missing[0]!r})")
    model.load_state_dict(usable, strict=True)


def build_model(recipe: Recipe, classes: tuple[str, ...], head: str = "classmap") -> CamNet:
    """The classifier a recipe trains (random init unless ``recipe.pretrained``).

    Args:
        recipe: the training recipe.
        classes: class names in head order.
        head: the trainer method's :attr:`~wsbench.methods.Method.head`.
    """
    return CamNet(recipe.backbone, classes, recipe.output_stride, recipe.pool, recipe.pretrained, head=head)


def load_weights(model: CamNet, path: Path) -> None:
    """Load a stored classifier's ``final.pt`` into ``model``.

    Raises:
        UserError: a missing, unreadable or corrupt file, or weights of another architecture,
            naming the file and how to get it again.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: classifier weights missing; delete {path.parent} to train it again")
    state = load_torch(path)  # weights only: a file with Python objects is refused, never run
    try:
        model.load_state_dict(state)
    except Exception as err:  # not a state dict, or weights of another architecture
        raise UserError(f"{path}: unreadable classifier weights ({type(err).__name__}); delete {path.parent} to "
                        "train it again") from None
