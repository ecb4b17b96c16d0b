"""What map production asks of a network and of a method: protocols that a registered method and its
classifier satisfy, and so does a distilled run's segmenter (:mod:`wsbench.distill.segmenter`)."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..methods import Fusion

__all__ = ["MapModel", "MapSource"]


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
