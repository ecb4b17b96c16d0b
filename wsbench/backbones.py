"""Small ResNets for training from scratch on a CPU, registered in timm's model registry.

Large-receptive-field classifiers trained from scratch tell before from after by context and give
blurry CAMs; what made CAMs localise on two CPU cores was a receptive field of about one object
(see ``docs`` in the README). ``wsbench_resnet_tiny`` is a timm :class:`~timm.models.resnet.ResNet`
with narrow stages whose last two stages use 1×1 convolutions only, so features at output stride 8
see about 55 px. Use it like any timm model: ``--backbone wsbench_resnet_tiny``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

__all__ = ["PointwiseBlock"]


class PointwiseBlock(nn.Module):
    """Residual block of two 1×1 convolutions: adds depth without growing the receptive field.

    Takes the keyword arguments timm's ``make_blocks`` passes to ResNet blocks; spatial ones
    (dilation, anti-aliasing, drop-block) have no effect on a 1×1 convolution.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 act_layer: type[nn.Module] = nn.ReLU, norm_layer: type[nn.Module] = nn.BatchNorm2d,
                 drop_path: nn.Module | None = None, device=None, dtype=None, **_: object) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False, **dd)
        self.bn1 = norm_layer(planes, **dd)
        self.act1 = act_layer(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 1, bias=False, **dd)
        self.bn2 = norm_layer(planes, **dd)
        self.act2 = act_layer(inplace=True)
        self.downsample = downsample
        self.drop_path = drop_path

    def zero_init_last(self) -> None:
        """Start as identity (timm calls this when ``zero_init_last=True``)."""
        nn.init.zeros_(cast(torch.Tensor, self.bn2.weight))  # norm_layer is typed as any module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual 1×1 → 1×1."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.drop_path is not None:
            x = self.drop_path(x)
        return self.act2(x + shortcut)


class _GroupNorm8(nn.GroupNorm):
    """GroupNorm with 8 groups, constructed like a BatchNorm layer (``norm_layer(channels)``)."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True, device=None, dtype=None,
                 **_: object) -> None:
        super().__init__(8, num_features, eps=eps, affine=affine, device=device, dtype=dtype)


def _tiny(pretrained: bool, **kwargs) -> ResNet:
    if pretrained:
        raise ValueError("wsbench_resnet_tiny has no pretrained weights")
    args: dict[str, Any] = dict(block=(BasicBlock, PointwiseBlock, PointwiseBlock, PointwiseBlock), layers=(1, 1, 1, 1),
                channels=(32, 64, 128, 192), stem_width=16, stem_type="deep")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's loader-only arguments
        kwargs.pop(key, None)
    args.update(kwargs)
    return ResNet(**args)


@register_model
def wsbench_resnet_tiny(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet with stages of widths 32/64/128/192, the last two pointwise (≈55 px receptive field).

    For training from scratch on small inputs (96–128 px) on a CPU in minutes.
    """
    return _tiny(pretrained, **kwargs)


@register_model
def wsbench_resnet_tiny_gn(pretrained: bool = False, **kwargs) -> ResNet:
    """``wsbench_resnet_tiny`` with GroupNorm (8 groups) instead of BatchNorm.

    Its outputs do not depend on which images share a batch, so a multi-process (DDP) training with
    per-rank batches equals a single-process one up to float rounding; with BatchNorm each rank
    normalises by the statistics of its own part of the batch (SyncBatchNorm is CUDA-only).
    """
    kwargs.setdefault("norm_layer", _GroupNorm8)
    return _tiny(pretrained, **kwargs)
