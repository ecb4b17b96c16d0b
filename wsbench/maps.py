"""Map production, the same for the evaluator, export, segmentation and figures.

A method's maps of a batch of frames (:func:`batch_maps`), of a whole video (:func:`video_maps`)
and, fused over neighbouring frames with the cached flow, the maps that get scored
(:func:`fused_video_maps`; the fusion itself is :func:`fuse_maps`). Nothing here thresholds maps or
reads GT: that is :mod:`wsbench.evaluate`.

**Multi-scale and flip inference** (test-time augmentation, :func:`multiscale_maps`). The authors'
benchmark code computes CAMs at scales 0.2, 0.5, 1, 2, 4 and 6 of the input and on its
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
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .data.cache import PreparedData
from .data.torch_data import FOREGROUND, ORIGINAL, make_input
from .device import autocast, to_device
from .flow import resize_flow, warp_chain
from .methods import Fusion
from .recipes import MAX_CAM_SCALE

__all__ = ["CAM_COMBINE", "MapModel", "MapSource", "batch_maps", "fuse_maps", "fused_video_maps", "multiscale_maps",
           "parse_scales", "resize_maps", "uses_raw_maps", "video_maps"]

_MIN_SIDE = 8  # smallest input side a scale may produce

#: How multi-scale inference combines the scales (``--cam-combine``): each scale's normalised map,
#: or the raw maps normalised once after the sum (the authors' code).
CAM_COMBINE = ("normalised", "raw")


class MapModel(Protocol):
    """What map production asks of a network: a trained :class:`~wsbench.model.CamNet`, or a distilled
    run's segmenter (:class:`wsbench.distill.SegmenterNet`)."""

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names whose maps may be asked for."""
        ...

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Network input of uint8 frames (B, 3, H, W)."""
        ...

    def eval(self) -> Any:
        """Inference mode."""
        ...

    def __call__(self, x: torch.Tensor) -> Any:
        """The network's output for normalised frames."""
        ...


class MapSource(Protocol):
    """What map production asks of a method: a registered :class:`~wsbench.methods.Method`, or a
    distilled run's segmenter (:class:`wsbench.distill.SegmenterMaps`).

    Attributes:
        name: shown in progress bars.
        target: the class whose maps are asked for (set on a copy for another class's maps).
    """

    name: str
    target: str

    @property
    def needs_grad(self) -> bool:
        """Whether :meth:`maps` needs autograd (else it runs under ``torch.inference_mode``)."""
        ...

    def maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """(B, h, w) maps in [0, 1] of class :attr:`target` for normalised frames (B, 3, H, W)."""
        ...

    def raw_maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """The same maps before normalisation (fusion and multi-scale on raw maps)."""
        ...

    def fusion(self) -> Fusion | None:
        """Its own temporal fusion at inference, or ``None``."""
        ...


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
        method: a :class:`~wsbench.methods.Method` (or any :class:`MapSource`).
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
    if combine not in CAM_COMBINE:
        raise ValueError(f"--cam-combine must be one of {', '.join(CAM_COMBINE)}, not {combine!r}")
    scales = tuple(float(s) for s in scales)
    maps_of = method.raw_maps if raw or combine == "raw" else method.maps
    if scales == (1.0,) and not flip:
        return method.raw_maps(model, images) if raw else method.maps(model, images)
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
    peak = total.flatten(1).amax(dim=1).view(-1, 1, 1)
    return total / (peak + 1e-5) if combine == "raw" else total / peak.clamp_min(1e-5)


def fuse_maps(maps: torch.Tensor, to_next: torch.Tensor | None, to_prev: torch.Tensor | None,
              fusion: Fusion) -> torch.Tensor:
    """Temporal fusion of one video's maps: neighbours t±1…t±k brought into t and aggregated.

    Args:
        maps: (T, h, w) maps of consecutive frames.
        to_next, to_prev: (T, 2, h', w') flows from each frame to the next / previous one
            (``None`` is fine when ``fusion.warp`` is false: they are not used).
        fusion: number of neighbours, aggregation (``max`` or ``mean``), whether neighbours are
            warped with the flow, whether only previous frames take part (``causal``), and what is
            fused (``on``: with ``"raw"``, ``maps`` are raw maps and each fused frame is divided by
            its maximum + 1e-5 afterwards, as the authors' POF-CAM inference does).

    Returns:
        (T, h, w) fused maps; each frame's own map always takes part, a warped neighbour only where
        it is valid (its sample point lies inside the neighbour frame), an unwarped one everywhere.
    """
    t, h, w = maps.shape
    flows: tuple[torch.Tensor, torch.Tensor] | None = None  # (to next, to previous) at the maps' size
    if fusion.warp:
        if to_next is None or to_prev is None:
            raise ValueError("fusion with warp needs the flows to the next and to the previous frames")
        flows = resize_flow(to_next.float(), (h, w)), resize_flow(to_prev.float(), (h, w))
    m = maps.float()[:, None]
    total, count, best = m.clone(), torch.ones_like(m), m.clone()
    for k in range(1, min(fusion.neighbours, t - 1) + 1):
        if flows is not None:
            # frames 0..T-k-1 receive frame t+k, chained through t+1, ..., t+k-1
            fwd, v_fwd = warp_chain(m[k:], [flows[0][j:t - k + j] for j in range(k)])
            # frames k..T-1 receive frame t-k, chained through t-1, ..., t-k+1
            bwd, v_bwd = warp_chain(m[:t - k], [flows[1][k - j:t - j] for j in range(k)])
        else:
            fwd, v_fwd = m[k:], torch.ones_like(m[k:])
            bwd, v_bwd = m[:t - k], torch.ones_like(m[:t - k])
        sides = [(slice(k, t), bwd, v_bwd)] + ([] if fusion.causal else [(slice(0, t - k), fwd, v_fwd)])
        for sl, warped, valid in sides:
            total[sl] += warped * valid
            count[sl] += valid
            best[sl] = torch.maximum(best[sl], torch.where(valid > 0, warped, best[sl]))
    fused = (best if fusion.mode == "max" else total / count)[:, 0]
    if fusion.on == "raw":
        fused = fused / (fused.flatten(1).amax(dim=1).view(-1, 1, 1) + 1e-5)
    return fused


def uses_raw_maps(fusion: Fusion | None) -> bool:
    """Whether the maps to fuse are the method's raw maps (fusion over neighbours ``on="raw"``)."""
    return fusion is not None and fusion.neighbours > 0 and fusion.on == "raw"


def batch_maps(method: MapSource, model: MapModel, frames: np.ndarray, fg: np.ndarray, variant: int,
               device: torch.device, needs_grad: bool = False, scales: tuple[float, ...] = (1.0,),
               flip: bool = False, raw: bool = False, combine: str = "normalised") -> torch.Tensor:
    """The method's maps of a batch of frames at training resolution.

    Args:
        method, model: the method and its classifier (eval mode).
        frames: (B, h, w, 3) uint8 frames at the training resolution.
        fg: (B, h, w) 0/1 foreground masks at the same resolution.
        variant: network input, ``FOREGROUND`` or ``ORIGINAL`` (see :mod:`wsbench.data.torch_data`).
        device: where to compute.
        needs_grad: the method's maps need autograd (:attr:`MapSource.needs_grad`).
        scales, flip: multi-scale / flip inference (:func:`multiscale_maps`).
        raw: the method's raw maps instead (:meth:`~wsbench.methods.Method.raw_maps`, for
            :func:`uses_raw_maps` fusion).
        combine: how the scales are combined (:func:`multiscale_maps`).

    Returns:
        (B, h', w') float maps on the CPU, before fusion. Maps that need no gradients are forward
        passes under ``torch.inference_mode`` (bf16 autocast on CUDA); GradCAM-family maps run with
        autograd in fp32.
    """
    images = make_input(frames, fg, variant)
    x = model.normalize(to_device(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2), device))
    x = x.contiguous(memory_format=torch.channels_last)
    if needs_grad:
        maps = multiscale_maps(method, model, x, scales, flip, raw, combine)
    else:
        with torch.inference_mode(), autocast(device):
            maps = multiscale_maps(method, model, x, scales, flip, raw, combine)
    return maps.detach().float().cpu()


def video_maps(method: MapSource, model: MapModel, data: PreparedData, pos: int, variant: int, device: torch.device,
               batch_size: int = 32, needs_grad: bool = False, scales: tuple[float, ...] = (1.0,),
               flip: bool = False, raw: bool = False, combine: str = "normalised") -> torch.Tensor:
    """The method's maps (``raw``: its raw maps) of every frame of video ``pos`` before fusion: (T, h, w), CPU;
    ``combine`` as in :func:`multiscale_maps`."""
    s = data.slices[pos]
    out = []
    for start in range(s.start, s.stop, batch_size):
        stop = min(start + batch_size, s.stop)
        out.append(batch_maps(method, model, data.frames[start:stop], data.fg[start:stop], variant, device,
                              needs_grad, scales, flip, raw, combine))
    return torch.cat(out)


def fused_video_maps(method: MapSource, model: MapModel, data: PreparedData, pos: int, device: torch.device,
                     background_removal: bool = True, fusion: Fusion | None = None, flows: np.ndarray | None = None,
                     batch_size: int = 32, scales: tuple[float, ...] = (1.0,), flip: bool = False,
                     combine: str = "normalised") -> torch.Tensor:
    """The maps that get scored: the method's maps of every frame of video ``pos``, fused if asked.

    Args:
        method: the method.
        model: its trained classifier, in eval mode.
        data: prepared data.
        pos: position of the video in ``data.index.videos``.
        device: where to compute maps.
        background_removal: feed background-removed frames (as in training) or originals.
        fusion: temporal fusion at inference (``None`` or 0 neighbours: none).
        flows: the cached flows ``data.flows(...)``, needed when fusing with warping.
        batch_size: frames per forward pass.
        scales, flip, combine: multi-scale / flip inference (:func:`multiscale_maps`).

    Returns:
        (T, h, w) maps on the CPU at the method's resolution.
    """
    needs_grad = method.needs_grad
    variant = FOREGROUND if background_removal else ORIGINAL
    maps = video_maps(method, model, data, pos, variant, device, batch_size, needs_grad, scales, flip,
                      uses_raw_maps(fusion), combine)
    if fusion is not None and fusion.neighbours > 0:
        if not fusion.warp:
            return fuse_maps(maps, None, None, fusion)
        if flows is None:
            raise ValueError("fusion with warping needs the cached flows")
        s = data.slices[pos]
        clip = torch.from_numpy(np.asarray(flows[s.start:s.stop], dtype=np.float32))
        maps = fuse_maps(maps, clip[:, 0], clip[:, 1], fusion)
    return maps
