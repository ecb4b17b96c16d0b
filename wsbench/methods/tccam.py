"""``tccam``: temporal-consistent CAM, the paper's method (§4.4–4.5; POF-CAM in the authors' code).

PuzzleCAM's spatial module plus the temporal module: the CAMs M = ReLU(f[y]) / max of the
neighbouring frames are warped into frame t with the cached optical flow (Flow(X_t, X_{t±1})),
fused by pixel-wise max into M_fused, and L_temporal = ‖M_t − M_fused‖₁ pulls the central CAM
toward it. L_total = L_cls + L_p-cls + α·L_spatial + β·L_temporal (eq. 12). α, β and their ramp
are TC-CAM's own options (``--alpha-max``, ``--beta-max``, ``--weight-ramp``, see
:class:`~wsbench.methods.puzzlecam.PuzzleCam`); a named recipe may set their defaults (the ``cpu``
recipe's β is 12, chosen on the synthetic belt's validation split).

Batching: the paper's form feeds triplets (t−1, t, t+1) and computes L_cls and the spatial terms
on the central frame only, so each sample costs three backbone passes. ``--batching clip`` (the
default) loads clips of ``--clip-len`` consecutive frames, passes each frame through the backbone
once, applies L_cls and the spatial terms to every frame and L_temporal to every interior frame
with its two neighbours — the same loss per central frame at about the cost of PuzzleCAM.

With background removal every video gives two streams, its objects (class before/after) and its
belt with the objects blacked out (class ``background``), and both are clips: by default the
temporal loss also runs on the background clips (on their background class map, the only class
of their label), which the paper does not say; ``--no-temporal-background`` leaves them out of
the temporal loss (they still train L_cls and the spatial terms).

``--no-temporal`` trains exactly like ``puzzlecam`` with the same α and ramp, and
``--no-spatial --no-temporal`` like ``cam`` (they share those classifiers; β then changes nothing);
with ``--no-spatial`` alone it is the ablation's "only temporal" row.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from . import register_method
from .base import Batch, LossTerm, Progress
from .puzzlecam import PuzzleCam, PuzzleCamOptions, _check_weight, puzzle_terms

if TYPE_CHECKING:
    from ..model import CamNet

__all__ = ["TemporalConsistentCam"]


@dataclasses.dataclass(frozen=True)
class TcCamOptions(PuzzleCamOptions):
    """Options of ``tccam``: PuzzleCAM's (α and the ramp) plus the modules, batching and β."""

    spatial: bool = dataclasses.field(default=True, metadata={"help": "spatial module (PuzzleCAM loss)"})
    temporal: bool = dataclasses.field(default=True, metadata={"help": "temporal module (flow-warped CAM loss)"})
    batching: Literal["clip", "triplet"] = dataclasses.field(
        default="clip", metadata={"help": "clip: one backbone pass per frame; triplet: the paper's samples"})
    clip_len: int = dataclasses.field(default=4, metadata={"help": "frames per clip with --batching clip (>= 3)"})
    beta_max: float = dataclasses.field(default=4.0,
                                        metadata={"help": "max weight of the temporal loss (recipe cpu: 12)"})
    temporal_background: bool = dataclasses.field(
        default=True, metadata={"help": "temporal loss also on the background-stream clips (background removal)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_weight(self.beta_max, "--beta-max")
        if self.clip_len < 3:
            raise ValueError("--clip-len must be at least 3")


@register_method("tccam", needs_video=True, display_name="TC-CAM",
                 description="temporal-consistent CAM (the paper's method): PuzzleCAM + flow-warped temporal loss")
class TemporalConsistentCam(PuzzleCam):
    """Spatial + temporal modules; the ablation rows come from ``--no-spatial`` / ``--no-temporal``."""

    Options = TcCamOptions

    def classifier(self) -> tuple[str, dict]:
        """Without the temporal module this *is* ``puzzlecam`` (same α and ramp) or ``cam``, so it
        shares their classifier; options that change nothing in training are left out of the key."""
        opts = dataclasses.asdict(self.options)
        if not self.options.temporal:
            return ("puzzlecam", {k: opts[k] for k in ("alpha_max", "weight_ramp")}) if self.options.spatial \
                else ("cam", {})
        if self.options.batching == "triplet":
            opts.pop("clip_len")
        if not self.options.spatial:
            opts.pop("alpha_max")
        return self.name, opts

    def beta(self, progress: Progress) -> float:
        """β at this point of training (:func:`wsbench.losses.ramp_weight` of ``beta_max``)."""
        from ..losses import ramp_weight

        return ramp_weight(self.options.beta_max, progress, self.options.weight_ramp)

    def modules(self) -> tuple[bool, bool] | None:
        """What ``spatial`` and ``temporal`` say."""
        return self.options.spatial, self.options.temporal

    def clip_length(self) -> int:
        """3 for triplets, ``clip_len`` for clips."""
        return 3 if self.options.batching == "triplet" else self.options.clip_len

    def clip_stride(self) -> int | None:
        """Triplets: one per central frame; clips tile the video, their starts moved every epoch."""
        return 1 if self.options.batching == "triplet" else None

    def training_losses(self, model: CamNet, batch: Batch, progress: Progress) -> dict[str, LossTerm]:
        """Eq. (12) on a batch of clips."""
        from ..losses import classification_loss, temporal_loss

        t = batch.clip_len
        maps = model(batch.images)  # every frame of every clip, once
        clip_maps = maps.view(-1, t, *maps.shape[1:])
        if self.options.batching == "triplet":  # per-frame terms on the central frame only
            images = batch.images.view(-1, t, *batch.images.shape[1:])[:, 1]
            frame_maps, labels = clip_maps[:, 1], batch.clip_labels
        else:
            images, frame_maps, labels = batch.images, maps, batch.labels
        if self.options.spatial:
            terms = puzzle_terms(model, images, labels, frame_maps, self.alpha(progress))
        else:
            terms = {"cls": LossTerm(classification_loss(model.pool(frame_maps), labels))}
        if batch.flows is None:
            raise ValueError("tccam trains on clips with their flows; this batch has none")
        clip_labels, flows = batch.clip_labels, batch.flows
        if not self.options.temporal_background and "background" in model.classes:
            keep = clip_labels[:, model.class_index("background")] == 0  # the object clips
            clip_maps, flows, clip_labels = clip_maps[keep], flows[keep], clip_labels[keep]
        loss = temporal_loss(clip_maps, flows, clip_labels) if len(clip_maps) else maps.sum() * 0.0
        terms["temporal"] = LossTerm(loss, self.beta(progress))
        return terms
