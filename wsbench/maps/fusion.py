"""Temporal fusion of one video's maps over neighbouring frames (:func:`fuse_maps`), warped with the cached flow."""

from __future__ import annotations

import torch

from ..flow import resize_flow, warp_chain
from ..methods import Fusion

__all__ = ["fuse_maps", "uses_raw_maps"]


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
