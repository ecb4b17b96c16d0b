"""Warping maps along flow fields (one step or chained) and resizing flow fields.

Every function follows the convention of :mod:`wsbench.flow`: a flow goes from src to dst and
``warp(dst_map, flow) ≈ src_map``. torch is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["warp", "warp_chain", "resize_flow"]

# Slack (pixels) allowed outside the map before a sample counts as invalid; absorbs float rounding.
_VALID_TOL = 1e-3


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def warp(maps: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Bring maps defined on ``dst`` into ``src``'s frame: ``warped(x) = maps(x + flow(x))``.

    ``flow`` goes from src to dst (``src(x) ≈ dst(x + flow(x))``, the module's convention), so
    with ``flow = Flow(X_t, X_k)`` this warps the CAM of neighbour ``k`` into frame ``t``.
    Sampling is bilinear (``mode="nearest"``: the nearest pixel, which keeps label and bin maps
    integer, so warping commutes with thresholding); a sample point counts as valid when it lies inside the map, i.e. in
    ``[0, w-1] × [0, h-1]`` up to 1e-3 px, and ``warped`` is 0 where it is not. Pixel ``i`` sits
    at coordinate ``i`` (pixel centres), so zero flow is exactly the identity and an integer flow
    is an exact shift.

    Differentiable with respect to ``maps`` (and to ``flow`` inside the map). ``float16`` and
    ``bfloat16`` maps are sampled in ``float32`` and returned in their own dtype.

    Args:
        maps: ``(B, C, h, w)`` floating-point maps on the dst frame.
        flow: ``(B, 2, h, w)`` flow in pixels **at the maps' resolution** (use
            :func:`resize_flow` first if it was estimated on full-size frames).
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(warped, valid)``: ``warped`` ``(B, C, h, w)`` in ``maps.dtype``; ``valid``
        ``(B, 1, h, w)`` in ``maps.dtype``, 1 where the sample point was inside the map, else 0.

    Raises:
        ValueError: for mismatched shapes, non-floating maps or an unknown mode.
    """
    import torch
    import torch.nn.functional as F

    if maps.ndim != 4 or not maps.is_floating_point():
        raise ValueError(f"maps must be a floating-point (B, C, h, w) tensor, got {maps.dtype} {tuple(maps.shape)}")
    b, _, h, w = maps.shape
    if flow.shape != (b, 2, h, w):
        raise ValueError(f"flow must have shape {(b, 2, h, w)} to match maps, got {tuple(flow.shape)}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    coord_dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    flow = flow.to(device=maps.device, dtype=coord_dtype)

    xs = torch.arange(w, device=maps.device, dtype=coord_dtype).view(1, 1, w)
    ys = torch.arange(h, device=maps.device, dtype=coord_dtype).view(1, h, 1)
    px = xs + flow[:, 0]
    py = ys + flow[:, 1]
    valid = (px >= -_VALID_TOL) & (px <= w - 1 + _VALID_TOL) & (py >= -_VALID_TOL) & (py <= h - 1 + _VALID_TOL)
    # Clamping pulls the tolerance band onto the border; invalid (and NaN) points go to 0, masked below.
    zero = torch.zeros((), device=maps.device, dtype=coord_dtype)
    px = torch.where(valid, px.clamp(0, w - 1), zero)
    py = torch.where(valid, py.clamp(0, h - 1), zero)

    # grid_sample with align_corners=False maps g to pixel (g + 1) * size / 2 - 0.5. With the map
    # zero-padded (bottom/right) to power-of-two sizes, g = (2p + 1) / size - 1 and its inverse are
    # exact in floating point for integer p, so zero and integer flows reproduce pixels bit for bit;
    # for the unpadded size they round, and the 1e-7 weight error breaks exactness. Padding is never
    # sampled with a non-zero weight because points are clamped into [0, w-1] x [0, h-1].
    size_h, size_w = _next_pow2(h), _next_pow2(w)
    grid = torch.stack(((2 * px + 1) / size_w - 1, (2 * py + 1) / size_h - 1), dim=-1)
    source = maps.to(coord_dtype)
    if (size_h, size_w) != (h, w):
        source = F.pad(source, (0, size_w - w, 0, size_h - h))
    sampled = F.grid_sample(source, grid, mode=mode, padding_mode="zeros", align_corners=False)
    valid = valid.unsqueeze(1)
    warped = torch.where(valid, sampled, torch.zeros((), device=maps.device, dtype=coord_dtype))
    return warped.to(maps.dtype), valid.to(maps.dtype)


def warp_chain(maps: torch.Tensor, flows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring maps from frame ``t+k`` to frame ``t`` through one-step flows.

    ``flows[j]`` is the flow from frame ``t+j`` to frame ``t+j+1`` (so ``flows[0]`` starts at the
    target frame ``t``), all at the maps' resolution. The maps are warped successively by
    ``flows[k-1]`` (into frame ``t+k-1``), then ``flows[k-2]``, ..., then ``flows[0]``; with ``k``
    steps the result is therefore resampled ``k`` times (a little extra blur per non-integer step),
    in exchange for needing only one-step flows, which estimators get right far more often than
    long-range ones.

    Validity is conservative: the valid mask so far is warped along with the maps, and a pixel
    stays valid only where this step's sample point is inside the map *and* every pixel the
    bilinear sample touched was valid (warped mask ≈ 1). Otherwise the zeros written at invalid
    pixels would leak into valid ones.

    Args:
        maps: ``(B, C, h, w)`` floating-point maps on frame ``t+k``.
        flows: ``k`` flows ``(B, 2, h, w)``; an empty sequence returns the maps unchanged.

    Returns:
        ``(warped, valid)`` as for :func:`warp`: ``warped`` ``(B, C, h, w)`` on frame ``t``,
        ``valid`` ``(B, 1, h, w)`` 0/1 in ``maps.dtype``.

    Raises:
        ValueError: for mismatched shapes.
    """
    import torch

    current = maps
    valid = torch.ones_like(maps[:, :1])
    for step, flow in enumerate(reversed(list(flows))):
        if step == 0:
            current, valid = warp(current, flow)
            continue
        channels = current.shape[1]
        stacked, inside = warp(torch.cat((current, valid), dim=1), flow)
        current = stacked[:, :channels]
        carried = stacked[:, channels:] >= 1 - 1e-4
        valid = inside * carried.to(inside.dtype)
        current = current * valid  # zero where a blend reached an invalid pixel
    return current, valid


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a flow field to another resolution and rescale its vectors to that resolution.

    Interpolation is bilinear with pixel-centre alignment (``align_corners=False``, the convention
    :func:`warp` uses) and antialiasing: when shrinking, each output vector is a weighted mean of
    the input vectors under it (triangle filter widened by the scale factor), so no motion is
    skipped; when enlarging it is plain bilinear. ``u`` is then multiplied by ``w / W`` and ``v``
    by ``h / H``.

    Args:
        flow: ``(B, 2, H, W)`` flow in pixels of the ``H × W`` grid.
        size: target ``(h, w)``.

    Returns:
        ``(B, 2, h, w)`` flow in pixels of the ``h × w`` grid, same dtype as ``flow``.

    Raises:
        ValueError: for a malformed flow or size.
    """
    import torch
    import torch.nn.functional as F

    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (h, w), got {size!r}")
    big_h, big_w = flow.shape[-2:]
    if (h, w) == (big_h, big_w):
        return flow.clone()
    work = flow if flow.dtype == torch.float64 else flow.float()
    out = F.interpolate(work, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    scale = torch.tensor([w / big_w, h / big_h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return (out * scale).to(flow.dtype)
