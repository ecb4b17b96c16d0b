"""The base class of a CAM method: what the trainer and evaluator ask of it.

A method is small because everything shared lives elsewhere. It says

- **which classifier** its maps come from (:meth:`Method.classifier`): its own training recipe,
  or another registered method's (GradCAM and Frame-to-Frame use the plain classifier of
  ``cam``, so all three train once);
- **its loss terms** for a training batch (:meth:`Method.training_losses`), if it trains;
- **its maps** for a batch of frames (:meth:`Method.maps`), at whatever resolution is natural
  (feature resolution for CAMs), values in [0, 1], class *before*;
- optionally **temporal fusion** of the maps at inference (:meth:`Method.fusion`).

The trainer does data loading, augmentation, the α/β schedule, AMP, checkpoints and logging;
the evaluator does upsampling, thresholds, metrics and baselines. See CONTRIBUTING.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import torch

from ..model import CamNet, cam_from_class_maps

__all__ = ["Batch", "Fusion", "LossTerm", "Method", "NoOptions", "Progress"]


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a method that takes none."""


class LossTerm(NamedTuple):
    """One loss term: its value and the weight it enters the total with (logged separately)."""

    value: torch.Tensor
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where training is, and the current reconstruction-loss weights.

    Attributes:
        epoch: 0-based epoch.
        step: global optimisation step.
        steps_per_epoch: steps in one epoch.
        total_steps: steps of the whole training.
        alpha: current weight of the spatial (PuzzleCAM) loss.
        beta: current weight of the temporal loss.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    total_steps: int
    alpha: float
    beta: float


@dataclasses.dataclass
class Batch:
    """A training batch on the device.

    Attributes:
        images: normalised float frames (N, 3, H, W); for clips N = B × T, clip-major.
        labels: multi-hot (N, C) labels, one row per frame.
        clip_len: T for clip batches, 1 for single frames.
        flows: for clips, (B, T, 2, 2, h', w') flows (see :class:`~wsbench.data.torch_data.ClipDataset`).
    """

    images: torch.Tensor
    labels: torch.Tensor
    clip_len: int = 1
    flows: torch.Tensor | None = None

    @property
    def clip_labels(self) -> torch.Tensor:
        """(B, C) labels of the clips (one per clip)."""
        return self.labels[:: self.clip_len]


@dataclasses.dataclass(frozen=True)
class Fusion:
    """Temporal fusion of maps at inference: neighbours t±1…t±k warped into t and aggregated.

    Attributes:
        neighbours: k, how many frames on each side.
        mode: ``"max"`` or ``"mean"`` over the frame itself and its valid warped neighbours.
    """

    neighbours: int
    mode: str = "max"


class Method:
    """Base class of CAM methods. Subclass it, register it, and implement what differs.

    Class attributes:
        Options: a frozen dataclass of the method's own options; each field becomes a
            ``wsbench run`` option (``--name`` / ``--no-name`` for booleans) and its
            ``metadata["help"]`` the help text.
        target: class whose maps are the masks (``"before"``: the illegal objects).

    Args:
        **options: values of ``Options`` fields.
    """

    Options: ClassVar[type] = NoOptions
    target: ClassVar[str] = "before"
    name: str = ""

    def __init__(self, **options: Any) -> None:
        self.options = self.Options(**options)

    # -- training ----------------------------------------------------------------------------
    def classifier(self) -> tuple[str, dict[str, Any]]:
        """The method (name, options) whose training recipe trains the classifier of the maps.

        Two methods that return the same pair share one trained classifier. Default: itself
        with all its options.
        """
        return self.name, dataclasses.asdict(self.options)

    def clip_length(self) -> int:
        """Frames per training sample: 1 for single images, ≥ 3 for clips with flows."""
        return 1

    def clip_stride(self) -> int | None:
        """Distance between clip starts (``None``: clips tile each video)."""
        return None

    def training_losses(self, model: CamNet, batch: Batch, progress: Progress) -> dict[str, LossTerm]:
        """Loss terms of one training batch (the trainer sums value × weight).

        Called only on the method named by :meth:`classifier`. Default: the classification
        loss of the paper's eq. (5).
        """
        from ..losses import classification_loss

        maps = model(batch.images)
        return {"cls": LossTerm(classification_loss(model.pool(maps), batch.labels))}

    # -- inference ---------------------------------------------------------------------------
    def maps(self, model: CamNet, images: torch.Tensor) -> torch.Tensor:
        """Maps of class :attr:`target` for normalised frames (B, 3, H, W).

        Returns:
            (B, h, w) tensor in [0, 1] at the method's natural resolution. The evaluator runs
            this under ``torch.no_grad()`` unless the registry entry says ``needs_grad=True``.
            Default: the CAM of eq. (8) read off the class maps.
        """
        return cam_from_class_maps(model(images), model.class_index(self.target))

    def fusion(self) -> Fusion | None:
        """Temporal fusion of the maps at inference (``None``: per-frame maps as they are)."""
        return None
