"""Multi-scale and flip inference (test-time augmentation, :func:`multiscale_maps`).

The authors' benchmark code computes CAMs at scales 0.2, 0.5, 1, 2, 4 and 6 of the input and on its
horizontal mirror, enlarges every map to the input size and sums them. Here that wraps
:meth:`Method.maps`, so it works for every method alike: the input is resized to each scale
(bilinear, antialiased when shrinking), optionally mirrored, the method's maps are computed,
mirrored back and resized to the **input** resolution (antialiased when shrinking), and summed. The
sum is divided by its per-image maximum, so the result is again in [0, 1] with a maximum of 1.
Combining at input resolution matters: coarse maps of small scales averaged at the feature grid of
scale 1 lose the detail that the large scales add (the authors' combination, this one, keeps it).
How the scales are combined is a recorded option of every run (``--cam-combine``,
:data:`CAM_COMBINE`): ``normalised`` (the default) sums each scale's map as the method returns it,
already divided by its own maximum, so every scale weighs the same; ``raw`` is the authors' code:
the raw CAMs (:meth:`Method.raw_maps`, ReLU'd class maps) of every scale and mirror are summed and
the sum is divided once by its maximum + 1e-5, so a scale with stronger activations weighs more.
Fusion on raw maps (``--fuse-on raw``) always sums the raw maps and normalises after fusing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..recipes import MAX_CAM_SCALE
from .protocols import MapModel, MapSource

__all__ = ["CAM_COMBINE", "class_multiscale_maps", "multiscale_maps", "parse_scales", "resize_maps"]

_MIN_SIDE = 8  # smallest input side a scale may produce

#: How multi-scale inference combines the scales (``--cam-combine``): each scale's normalised map,
#: or the raw maps normalised once after the sum (the authors' code).
CAM_COMBINE = ("normalised", "raw")


def parse_scales(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.5,1,2"`` (or a sequence) → ``(0.5, 1.0, 2.0)``.

    Raises:
        ValueError: an empty list, a non-number, a scale ≤ 0 or above :data:`~wsbench.recipes.MAX_CAM_SCALE`.
    """
    items = [s for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items)
    except (TypeError, ValueError):
        raise ValueError(f"--cam-scales must be a comma-separated list of numbers, not {text!r}") from None
    if not scales or min(scales) <= 0:
        raise ValueError(f"--cam-scales needs at least one scale, all positive (got {text!r})")
    if any(s > MAX_CAM_SCALE for s in scales if s != float("inf")):  # inf: the caller's finiteness message
        raise ValueError(f"--cam-scales {text if isinstance(text, str) else ','.join(map(str, text))}: each scale "
                         f"must be at most {MAX_CAM_SCALE:g} (the input grows by it; the authors' code goes up to 6)")
    return scales


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (B, h, w) → (B, *size), bilinear, antialiased where a side shrinks."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    shrink = size[0] < maps.shape[-2] or size[1] < maps.shape[-1]
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False, antialias=shrink)[:, 0]


def multiscale_maps(method: MapSource, model: MapModel, images: torch.Tensor, scales: Sequence[float] = (1.0,),
                    flip: bool = False, raw: bool = False, combine: str = "normalised") -> torch.Tensor:
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
        combine: ``"normalised"``: sum the method's maps (each already normalised) and divide by
            the maximum; ``"raw"``: sum its raw maps and divide by the maximum + 1e-5 (the
            authors' code). A single scale without flip returns the method's maps either way.

    Returns:
        (B, H, W) maps in [0, 1] at the input resolution: the sum of every scale's (and mirror's)
        map resized to H × W, divided by its per-image maximum (``raw``: the sum, ≥ 0, not divided).

    Raises:
        ValueError: ``combine`` is not one of :data:`CAM_COMBINE`.
    """
    return class_multiscale_maps([method], model, images, scales, flip, raw, combine)[0]


def class_multiscale_maps(methods: Sequence[MapSource], model: MapModel, images: torch.Tensor,
                          scales: Sequence[float] = (1.0,), flip: bool = False, raw: bool = False,
                          combine: str = "normalised") -> list[torch.Tensor]:
    """:func:`multiscale_maps` of several methods (one method's copies for several classes) on the same inputs.

    Every resized (and mirrored) input is one tensor handed to each method in turn, so a model that
    computes its forward pass once per input tensor (:class:`~wsbench.maps.producer.MapProducer`
    for maps without autograd) runs once per scale and mirror for all of them.

    Args:
        methods: the methods, in the order of the returned maps.
        model, images, scales, flip, raw, combine: as in :func:`multiscale_maps`.

    Returns:
        One (B, H, W) tensor per method, each exactly what :func:`multiscale_maps` gives it.

    Raises:
        ValueError: ``combine`` is not one of :data:`CAM_COMBINE`.
    """
    if combine not in CAM_COMBINE:
        raise ValueError(f"--cam-combine must be one of {', '.join(CAM_COMBINE)}, not {combine!r}")
    scales = tuple(float(s) for s in scales)
    if scales == (1.0,) and not flip:
        return [m.raw_maps(model, images) if raw else m.maps(model, images) for m in methods]
    h, w = images.shape[-2:]
    totals = [torch.zeros(images.shape[0], h, w, device=images.device) for _ in methods]
    for scale in scales:
        size = (max(_MIN_SIDE, round(h * scale)), max(_MIN_SIDE, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                                                        antialias=size[0] < h or size[1] < w)
        for mirrored in ((False, True) if flip else (False,)):
            x_in = x.flip(-1) if mirrored else x
            for method, total in zip(methods, totals, strict=True):
                maps_of = method.raw_maps if raw or combine == "raw" else method.maps
                maps = maps_of(model, x_in).float()
                if mirrored:
                    maps = maps.flip(-1)
                total += resize_maps(maps, (h, w))
    if raw:
        return totals
    peaks = [total.flatten(1).amax(dim=1).view(-1, 1, 1) for total in totals]
    if combine == "raw":
        return [total / (peak + 1e-5) for total, peak in zip(totals, peaks, strict=True)]
    return [total / peak.clamp_min(1e-5) for total, peak in zip(totals, peaks, strict=True)]
