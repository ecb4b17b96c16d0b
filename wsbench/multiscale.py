"""Multi-scale and flip inference of any method's maps (test-time augmentation).

The authors' benchmark code computes CAMs at scales 0.2, 0.5, 1, 2, 4 and 6 of the input and on its
horizontal mirror, and combines them. Here that wraps :meth:`Method.maps`, so it works for every
method alike: the input is resized (bilinear) to each scale, optionally mirrored, the method's maps
are computed, mirrored back, resized to the maps' size at scale 1, and averaged. The average is
divided by its per-image maximum, so the result is again in [0, 1] with a maximum of 1 (the
authors sum raw CAMs and normalise the sum; here each scale's map is the method's own, already
normalised map).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .methods import Method
    from .model import CamNet

__all__ = ["parse_scales", "multiscale_maps"]

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


def multiscale_maps(method: Method, model: CamNet, images: torch.Tensor, scales: Sequence[float] = (1.0,),
                    flip: bool = False, raw: bool = False) -> torch.Tensor:
    """A method's maps averaged over input scales and, optionally, horizontal flips.

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
        (B, h, w) maps in [0, 1] (``raw``: ≥ 0) at the resolution of the method's maps at scale 1
        (at the largest scale when 1 is not among ``scales``).
    """
    scales = tuple(float(s) for s in scales)
    maps_of = method.raw_maps if raw else method.maps
    if scales == (1.0,) and not flip:
        return maps_of(model, images)
    h, w = images.shape[-2:]
    reference = None  # output size: the maps' size at scale 1, else at the largest scale
    total = None
    for scale in sorted(scales, key=lambda s: (s != 1.0, -s)):
        size = (max(_MIN_SIDE, round(h * scale)), max(_MIN_SIDE, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for mirrored in ((False, True) if flip else (False,)):
            maps = maps_of(model, x.flip(-1) if mirrored else x).float()
            if mirrored:
                maps = maps.flip(-1)
            reference = reference or tuple(maps.shape[-2:])
            if tuple(maps.shape[-2:]) != reference:
                maps = F.interpolate(maps[:, None], size=reference, mode="bilinear", align_corners=False)[:, 0]
            total = maps if total is None else total + maps
    assert total is not None
    if raw:
        return total
    return total / (total.flatten(1).amax(dim=1).clamp_min(1e-5).view(-1, 1, 1))
