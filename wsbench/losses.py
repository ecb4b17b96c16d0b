"""Loss terms of the paper (§4.2–4.5), as plain functions on tensors.

- :func:`classification_loss`: multi-label soft margin on pooled class maps (eq. 4–6).
- :func:`tile` / :func:`merge`: PuzzleCAM's 2×2 tiling of the input and merging of tile maps.
- :func:`spatial_loss`: L1 between full-image and merged class maps (eq. 7), PuzzleCAM's form.
- :func:`temporal_loss`: L1 between a frame's CAM and the max of its warped neighbours'
  CAMs (eq. 8–11).
- :func:`ramp_weight`: the weight of a reconstruction loss at a point of training (§5.2), which
  the methods that have such a loss call with their own maximum and ramp.

Both reconstruction losses use one convention, the official PuzzleCAM code's (which the authors'
POF-CAM code also uses for its temporal term): the absolute difference is multiplied by the image's
labels and averaged over all B × C × h × w elements. So α and β are in the authors' units.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from .flow import resize_flow, warp


class TrainingPoint(Protocol):
    """Where training is: what :func:`ramp_weight` reads (:class:`wsbench.methods.Progress` has it)."""

    @property
    def step(self) -> int:
        """Global optimisation step (0-based)."""

    @property
    def steps_per_epoch(self) -> int:
        """Steps in one epoch."""

    @property
    def total_steps(self) -> int:
        """Steps of the whole training."""

__all__ = [
    "classification_loss",
    "merge",
    "normalized_cams",
    "ramp_weight",
    "TrainingPoint",
    "spatial_loss",
    "temporal_loss",
    "temporal_loss_terms",
    "tile",
]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft margin loss (paper eq. 3–5).

    Args:
        logits: (B, C) pooled class maps.
        labels: (B, C) multi-hot targets.
    """
    return F.multilabel_soft_margin_loss(logits.float(), labels.float())


def tile(images: torch.Tensor) -> torch.Tensor:
    """Split images (B, 3, H, W) into 2×2 tiles stacked on the batch: (4B, 3, H/2, W/2).

    Row-major tile order (top-left, top-right, bottom-left, bottom-right), tile-major on the
    batch (all images' first tile, then all second tiles, …), as in the official PuzzleCAM code.
    """
    h, w = images.shape[2] // 2, images.shape[3] // 2
    return torch.cat([images[:, :, :h, :w], images[:, :, :h, w:], images[:, :, h:, :w], images[:, :, h:, w:]])


def merge(tiles: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tile` on maps: (4B, C, h, w) → (B, C, 2h, 2w) by concatenation."""
    tl, tr, bl, br = tiles.chunk(4, dim=0)
    return torch.cat([torch.cat([tl, tr], dim=3), torch.cat([bl, br], dim=3)], dim=2)


def spatial_loss(class_maps: torch.Tensor, merged_maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PuzzleCAM reconstruction loss ‖f − f_puzzle‖₁ (paper eq. 7).

    As in the official PuzzleCAM code: L1 on raw class maps (before ReLU), restricted to the
    image's classes by multiplying with the label, averaged over B × C × h × w.
    """
    diff = (class_maps.float() - merged_maps.float()).abs()
    return (diff * labels.float()[:, :, None, None]).mean()


def normalized_cams(class_maps: torch.Tensor) -> torch.Tensor:
    """ReLU(f) divided by its per-image, per-class maximum (paper eq. 8), all classes at once."""
    maps = F.relu(class_maps.float())
    return maps / (maps.flatten(2).amax(dim=2)[:, :, None, None] + 1e-5)


def temporal_loss_terms(
    centre: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor,
    flow_to_prev: torch.Tensor, flow_to_next: torch.Tensor, labels: torch.Tensor,
) -> torch.Tensor:
    """Temporal loss of central frames given their neighbours' class maps.

    Args:
        centre, prev, nxt: class maps (B, C, h, w) of frames t, t−1 and t+1.
        flow_to_prev, flow_to_next: flows (B, 2, H', W') from frame t to t−1 and to t+1 at any
            resolution (resized here to h × w).
        labels: (B, C) multi-hot labels of the frames (the temporal loss uses their classes).

    Returns:
        |M_t − max(warp(M_{t−1}), warp(M_{t+1}))| times the frame's labels, averaged over all
        B × C × h × w elements (the convention of :func:`spatial_loss` and of the authors' code);
        pixels where no warped neighbour is valid (belt entering the view) count as 0, so zero
        padding is never a target.
    """
    size = (centre.shape[-2], centre.shape[-1])
    m_t, m_prev, m_next = normalized_cams(centre), normalized_cams(prev), normalized_cams(nxt)
    w_prev, v_prev = warp(m_prev, resize_flow(flow_to_prev.float(), size))
    w_next, v_next = warp(m_next, resize_flow(flow_to_next.float(), size))
    fused = torch.maximum(w_prev.masked_fill(v_prev == 0, -1.0), w_next.masked_fill(v_next == 0, -1.0))
    valid = torch.maximum(v_prev, v_next)
    weight = valid * labels.float()[:, :, None, None]
    return ((m_t - fused).abs() * weight).mean()


def temporal_loss(class_maps: torch.Tensor, flows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Temporal loss over clips, every interior frame taken as a central frame.

    Args:
        class_maps: (B, T, C, h, w) class maps of B clips of T ≥ 3 frames.
        flows: (B, T, 2, 2, H', W'): ``flows[:, t, 0]`` from frame t to t+1, ``[:, t, 1]`` to t−1.
        labels: (B, C) clip labels.

    Returns:
        The loss of :func:`temporal_loss_terms` over all interior frames of all clips.
    """
    b, t = class_maps.shape[:2]
    if t < 3:
        raise ValueError(f"temporal loss needs clips of at least 3 frames, got {t}")
    inner = slice(1, t - 1)
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    labels_inner = labels[:, None].expand(b, t - 2, labels.shape[1])
    return temporal_loss_terms(
        centre=flat(class_maps[:, inner]),
        prev=flat(class_maps[:, : t - 2]),
        nxt=flat(class_maps[:, 2:]),
        flow_to_prev=flat(flows[:, inner, 1]),
        flow_to_next=flat(flows[:, inner, 0]),
        labels=flat(labels_inner),
    )


def ramp_weight(maximum: float, progress: TrainingPoint, ramp: str = "ramp") -> float:
    """Weight of a reconstruction loss at the point of training ``progress`` says (paper §5.2).

    Args:
        maximum: the weight's maximum (``alpha_max``, ``beta_max``).
        progress: the trainer's :class:`~wsbench.methods.Progress` (step, steps per epoch, steps in all).
        ramp: ``"ramp"``: 0 during the first epoch, then rising linearly to ``maximum`` at the
            midpoint of training (at once after the first epoch if that is already past the
            midpoint; the paper); ``"linear"``: ``maximum · min(1, step / (total_steps / 2))``,
            rising from step 0 (the official PuzzleCAM code's ``alpha_schedule = 0.5``);
            ``"constant"``: ``maximum`` throughout (the WS-WS authors' code).
    """
    if ramp == "constant":
        return maximum
    if ramp == "linear":
        return maximum * min(1.0, progress.step / (progress.total_steps / 2))
    if progress.step < progress.steps_per_epoch:
        return 0.0
    span = progress.total_steps / 2 - progress.steps_per_epoch
    if span <= 0:
        return maximum
    return maximum * min(1.0, (progress.step - progress.steps_per_epoch) / span)
