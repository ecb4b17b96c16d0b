"""Training-batch augmentation: random flips, shifts and colour gain, with the clip flows moved along.

Drawn from a generator seeded by the trainer (from seed and epoch), for the global batch, so the
ranks of a distributed run augment exactly as one process would.
"""

from __future__ import annotations

import torch

__all__ = ["augment"]


def augment(images: torch.Tensor, flows: torch.Tensor | None, generator: torch.Generator,
            clip_len: int = 1, shard: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random flips, shifts (≤ 1/16 of the size, zero fill) and colour gain, the same for a clip.

    The flow fields move with the frames: flips mirror them and negate the flipped component, and
    a clip's shift is rounded to whole cells of the flow grid (``H / h``) so that the flow field is
    shifted by exactly as many cells (zero flow where the frames are zero-filled). A field with
    several motions would otherwise be misaligned with the shifted frames.

    Args:
        images: float images (N, 3, H, W) in 0–255, clip-major when ``clip_len > 1``.
        flows: (B, T, 2, 2, h, w) clip flows or ``None``.
        generator: CPU generator for the random draws.
        clip_len: frames per clip.
        shard: ``(rank, world)``: the batch is part ``rank`` of ``world`` equal parts of a global
            batch; the draws are made for the global batch and this part's are used, so the ranks
            of a distributed run augment exactly as one process would.

    Returns:
        Augmented ``(images, flows)``.
    """
    n, _, h, w = images.shape
    b = n // clip_len
    part = slice(shard[0] * b, (shard[0] + 1) * b)
    draw = lambda *shape: torch.rand(shard[1] * shape[0], *shape[1:], generator=generator)[part]  # noqa: E731
    hflip, vflip = draw(b) < 0.5, draw(b) < 0.5
    gain = (0.9 + 0.2 * draw(b, 3)) * (0.9 + 0.2 * draw(b, 1))
    max_dy, max_dx = h // 16, w // 16
    dy = (draw(b) * (2 * max_dy + 1)).long() - max_dy
    dx = (draw(b) * (2 * max_dx + 1)).long() - max_dx

    clips = images.view(b, clip_len, 3, h, w)
    clips = torch.where(hflip.view(b, 1, 1, 1, 1).to(images.device), clips.flip(-1), clips)
    clips = torch.where(vflip.view(b, 1, 1, 1, 1).to(images.device), clips.flip(-2), clips)
    clips = (clips * gain.view(b, 1, 3, 1, 1).to(images.device)).clamp_(0, 255)
    if flows is None:
        return _shift(clips, dy, dx).view(n, 3, h, w), None
    sign_u = torch.where(hflip, -1.0, 1.0).to(flows.device).view(b, 1, 1, 1, 1)
    sign_v = torch.where(vflip, -1.0, 1.0).to(flows.device).view(b, 1, 1, 1, 1)
    flows = torch.where(hflip.view(b, 1, 1, 1, 1, 1).to(flows.device), flows.flip(-1), flows)
    flows = torch.where(vflip.view(b, 1, 1, 1, 1, 1).to(flows.device), flows.flip(-2), flows)
    flows = torch.stack((flows[:, :, :, 0] * sign_u, flows[:, :, :, 1] * sign_v), dim=3)
    # whole cells of the flow grid (towards zero, so within the bound), shifting the flow field exactly
    cell_y, cell_x = h / flows.shape[-2], w / flows.shape[-1]
    cells_y, cells_x = (dy.double() / cell_y).trunc().long(), (dx.double() / cell_x).trunc().long()
    shifted = _shift(clips, (cells_y * cell_y).round().long(), (cells_x * cell_x).round().long())
    return shifted.view(n, 3, h, w), _shift(flows, cells_y, cells_x)  # a common shift keeps flow values


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Shift each item ``x[i]`` (any leading dims, then H, W) by (dy[i], dx[i]) pixels, zero fill."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for i in range(x.shape[0]):
        y, s = int(dy[i]), int(dx[i])
        out[i, ..., max(y, 0):h + min(y, 0), max(s, 0):w + min(s, 0)] = \
            x[i, ..., max(-y, 0):h + min(-y, 0), max(-s, 0):w + min(-s, 0)]
    return out
