"""Multi-scale and flip inference of any method's maps (test-time augmentation).

The authors' benchmark code computes CAMs at scales 0.2, 0.5, 1, 2, 4 and 6 of the input and on its
horizontal mirror, enlarges every map to the input size and sums them. Here that wraps
:meth:`Method.maps`, so it works for every method alike: the input is resized to each scale
(bilinear, antialiased when shrinking), optionally mirrored, the method's maps are computed,
mirrored back and resized to the **input** resolution (antialiased when shrinking), and summed. The
sum is divided by its per-image maximum, so the result is again in [0, 1] with a maximum of 1.
Combining at input resolution matters: coarse maps of small scales averaged at the feature grid of
scale 1 lose the detail that the large scales add (the authors' combination, this one, keeps it).
The authors sum raw CAMs (ReLU'd class maps) and normalise the sum; by default each scale's map is
here the method's own normalised map (what every method returns), and ``raw=True`` sums the raw
maps (:meth:`Method.raw_maps`) exactly as they do, for fusion on raw maps (``--fuse-on raw``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .methods import Method
    from .model import CamNet

__all__ = ["multiscale_maps", "parse_scales", "resize_maps"]

_MIN_SIDE = 8  # smallest input side a scale may produce


def parse_scales(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.5,1,2"`` (or a sequence) → ``(0.5, 1.0, 2.0)``.

    Raises:
        ValueError: an empty list, a non-number or a scale ≤ 0.
    """
    items = [s for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items)
    except (TypeError, ValueError):
        raise ValueError(f"--cam-scales must be a comma-separated list of numbers, not {text!r}") from None
    if not scales or min(scales) <= 0:
        raise ValueError(f"--cam-scales needs at least one scale, all positive (got {text!r})")
    return scales


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (B, h, w) → (B, *size), bilinear, antialiased where a side shrinks."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    shrink = size[0] < maps.shape[-2] or size[1] < maps.shape[-1]
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False, antialias=shrink)[:, 0]


def multiscale_maps(method: Method, model: CamNet, images: torch.Tensor, scales: Sequence[float] = (1.0,),
                    flip: bool = False, raw: bool = False) -> torch.Tensor:
    """A method's maps summed over input scales and, optionally, horizontal flips, at input resolution.

    Args:
        method: a :class:`~wsbench.methods.Method`.
        model: its classifier.
        images: normalised frames (B, 3, H, W).
        scales: input scales; ``(1.0,)`` without ``flip`` returns ``method.maps`` unchanged.
        flip: also run every scale on the mirrored input (and mirror its maps back).
        raw: combine the method's raw maps (:meth:`~wsbench.methods.Method.raw_maps`) instead, and
            return their sum over scales and flips without normalising it (for fusion on raw maps,
            which normalises after fusing).

    Returns:
        (B, H, W) maps in [0, 1] at the input resolution: the sum of every scale's (and mirror's)
        map resized to H × W, divided by its per-image maximum (``raw``: the sum, ≥ 0, not divided).
    """
    scales = tuple(float(s) for s in scales)
    maps_of = method.raw_maps if raw else method.maps
    if scales == (1.0,) and not flip:
        return maps_of(model, images)
    h, w = images.shape[-2:]
    total = torch.zeros(images.shape[0], h, w, device=images.device)
    for scale in scales:
        size = (max(_MIN_SIDE, round(h * scale)), max(_MIN_SIDE, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                                                        antialias=size[0] < h or size[1] < w)
        for mirrored in ((False, True) if flip else (False,)):
            maps = maps_of(model, x.flip(-1) if mirrored else x).float()
            if mirrored:
                maps = maps.flip(-1)
            total += resize_maps(maps, (h, w))
    if raw:
        return total
    return total / (total.flatten(1).amax(dim=1).clamp_min(1e-5).view(-1, 1, 1))
