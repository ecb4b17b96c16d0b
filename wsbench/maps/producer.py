"""The map producer: a trained run's maps of a batch, a video or its classes, with every inference setting fixed once.

:class:`MapProducer` holds the method, its classifier and how the run computes maps (input variant,
multi-scale/flip inference, fusion over neighbours and the flow it warps with, device, whether the
maps need autograd); the evaluator, export, segmentation, figures and distillation ask it for maps
instead of threading those settings through. :func:`upsample` is the one way maps reach frame size.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch

from ..data.cache import PreparedData
from ..data.torch_data import FOREGROUND, ORIGINAL, make_input
from ..device import autocast, to_device
from ..files import write_image
from ..methods import Fusion
from ..recipes import Recipe
from ..runs import cam_inference
from .fusion import fuse_maps, uses_raw_maps
from .multiscale import CAM_COMBINE, class_multiscale_maps, multiscale_maps, parse_scales
from .protocols import MapModel, MapSource

__all__ = ["CamInference", "MapProducer", "network_input", "save_maps", "upsample"]


@dataclasses.dataclass(frozen=True)
class CamInference:
    """How a run computes maps at inference: ``--cam-scales``, ``--cam-flip``, ``--cam-combine``.

    Attributes:
        scales: input scales of multi-scale inference (``(1.0,)``: single scale).
        flip: also sum the maps of the mirrored frames.
        combine: how the scales are combined (:data:`~wsbench.maps.multiscale.CAM_COMBINE`,
            :func:`~wsbench.maps.multiscale_maps`).

    Raises:
        ValueError: scales that :func:`~wsbench.maps.parse_scales` refuses, or an unknown ``combine``.
    """

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    combine: str = "normalised"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", parse_scales(self.scales))
        if self.combine not in CAM_COMBINE:
            raise ValueError(f"--cam-combine must be one of {', '.join(CAM_COMBINE)}, not {self.combine!r}")

    @classmethod
    def of_config(cls, config: dict[str, Any]) -> CamInference:
        """What a resolved run config records (``cam_inference``; older records: single scale, no flip)."""
        cam = cam_inference(config)
        return cls(cam["cam_scales"], cam["cam_flip"], cam["cam_combine"])


def network_input(model: MapModel, frames: np.ndarray, fg: np.ndarray, variant: int,
                  device: torch.device) -> torch.Tensor:
    """Frames as the classifier sees them: input variant, normalised, on ``device``, channels last.

    Args:
        model: the classifier (its ``normalize``).
        frames: (B, h, w, 3) uint8 frames at the training resolution.
        fg: (B, h, w) 0/1 foreground masks at the same resolution.
        variant: ``FOREGROUND`` or ``ORIGINAL`` (see :mod:`wsbench.data.torch_data`).
        device: where the network runs.

    Returns:
        (B, 3, h, w) float tensor.
    """
    images = make_input(frames, fg, variant)
    x = model.normalize(to_device(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2), device))
    return x.contiguous(memory_format=torch.channels_last)


def upsample(scores: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One (h, w) map at frame size: bilinear, the one upsample every consumer of maps uses.

    Args:
        scores: (h, w) map (a tensor on the CPU or an array).
        size: ``(width, height)`` of the frame.

    Returns:
        (height, width) float32 array.
    """
    array = scores.numpy() if isinstance(scores, torch.Tensor) else scores
    return cv2.resize(array, size, interpolation=cv2.INTER_LINEAR)


class _SharedForward:
    """A classifier whose forward pass runs once per input tensor: the class maps of several classes of one
    batch come from one pass (every other attribute is the classifier's own)."""

    def __init__(self, model: MapModel) -> None:
        self._model = model
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x is not self._input or self._output is None:
            self._input, self._output = x, self._model(x)
        return self._output

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@dataclasses.dataclass(frozen=True, eq=False)
class MapProducer:
    """A trained run's maps: its method and classifier with every inference setting, fixed when it is made.

    Attributes:
        method: the method (its maps; :attr:`Method.target` is the class scored).
        model: its trained classifier, in eval mode.
        device: where maps are computed.
        background_removal: feed background-removed frames (as in training) or the originals.
        fusion: temporal fusion at inference (``None`` or 0 neighbours: per-frame maps).
        cam: multi-scale/flip inference.
        flow: the flow estimator whose cached flows fusion warps with (and the evaluator's
            stability metric reads).
        flow_options: its options (e.g. ``root`` of the ``files`` estimator).
        needs_grad: the maps need autograd; ``None``: what the method says
            (:attr:`~wsbench.maps.MapSource.needs_grad`, asked here, once).
    """

    method: MapSource
    model: MapModel
    device: torch.device
    background_removal: bool = True
    fusion: Fusion | None = None
    cam: CamInference = CamInference()
    flow: str = "dis"
    flow_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs_grad: bool | None = None

    def __post_init__(self) -> None:
        if self.needs_grad is None:
            object.__setattr__(self, "needs_grad", self.method.needs_grad)

    @classmethod
    def of_run(cls, method: MapSource, model: MapModel, recipe: Recipe, config: dict[str, Any], device: torch.device,
               fusion: Fusion | None = None) -> MapProducer:
        """The producer of a run: input variant and flow from its recipe, multi-scale/flip from its config.

        Args:
            method: the run's method with its options.
            model: its classifier.
            recipe: the run's training recipe.
            config: the run's resolved config (``cam_inference``).
            device: where maps are computed.
            fusion: the run's fusion at inference; ``None``: the method's own (:meth:`Method.fusion`).

        Returns:
            The producer.
        """
        return cls(method, model, device, recipe.background_removal,
                   fusion if fusion is not None else method.fusion(), CamInference.of_config(config),
                   recipe.flow, recipe.flow_options())

    @property
    def warps(self) -> bool:
        """Whether fusion warps neighbours with the cached flow."""
        return self.fusion is not None and self.fusion.neighbours > 0 and self.fusion.warp

    def flows(self, data: PreparedData) -> np.ndarray:
        """The cached flows of ``data`` for this producer's flow estimator (computed once per data set)."""
        return data.flows(self.flow, **self.flow_options)

    def fusion_flows(self, data: PreparedData) -> np.ndarray | None:
        """:meth:`flows` when fusion warps with them, else ``None`` (nothing is computed)."""
        return self.flows(data) if self.warps else None

    def batch(self, frames: np.ndarray, fg: np.ndarray) -> torch.Tensor:
        """Maps of a batch of frames at training resolution, before fusion (raw maps for fusion on raw maps).

        Args:
            frames: (B, h, w, 3) uint8 frames at the training resolution.
            fg: (B, h, w) 0/1 foreground masks at the same resolution.

        Returns:
            (B, h', w') float maps on the CPU. Maps that need no gradients are forward passes under
            ``torch.inference_mode`` (bf16 autocast on CUDA); GradCAM-family maps run with autograd in fp32.
        """
        return self._batch(frames, fg, [self.method])[0]

    def video(self, data: PreparedData, pos: int, flows: np.ndarray | None = None,
              batch_size: int = 32) -> torch.Tensor:
        """The maps that get scored: the method's maps of every frame of video ``pos``, fused if the run fuses.

        Args:
            data: the run's prepared data.
            pos: position of the video in ``data.index.videos``.
            flows: :meth:`flows` of ``data`` (looked up when ``None`` and fusion warps).
            batch_size: frames per forward pass.

        Returns:
            (T, h, w) maps on the CPU at the method's resolution.
        """
        return self.classes(data, pos, flows, (self.method.target,), batch_size)[self.method.target]

    def classes(self, data: PreparedData, pos: int, flows: np.ndarray | None = None,
                names: Sequence[str] | None = None, batch_size: int = 32) -> dict[str, torch.Tensor]:
        """The maps of several classes of video ``pos``, each as :meth:`video` gives the method's class.

        Maps without autograd share one forward pass per batch, scale and mirror for all classes.

        Args:
            data, pos, flows, batch_size: as in :meth:`video`.
            names: the classes (``None``: every class of the classifier, in its order).

        Returns:
            ``{class: (T, h, w) maps}`` in the order of ``names``.
        """
        names = tuple(self.model.classes) if names is None else tuple(names)
        methods = [self.method if name == self.method.target else _targeting(self.method, name) for name in names]
        s = data.slices[pos]
        chunks = [self._batch(data.frames[start:min(start + batch_size, s.stop)],
                              data.fg[start:min(start + batch_size, s.stop)], methods)
                  for start in range(s.start, s.stop, batch_size)]
        return {name: self._fused(torch.cat([chunk[j] for chunk in chunks]), data, pos, flows)
                for j, name in enumerate(names)}

    def _batch(self, frames: np.ndarray, fg: np.ndarray, methods: list[MapSource]) -> list[torch.Tensor]:
        x = network_input(self.model, frames, fg, FOREGROUND if self.background_removal else ORIGINAL, self.device)
        cam, raw = self.cam, uses_raw_maps(self.fusion)
        if self.needs_grad:
            maps = [multiscale_maps(m, self.model, x, cam.scales, cam.flip, raw, cam.combine) for m in methods]
        else:
            with torch.inference_mode(), autocast(self.device):
                shared = cast(MapModel, _SharedForward(self.model))
                maps = class_multiscale_maps(methods, shared, x, cam.scales, cam.flip, raw, cam.combine)
        return [m.detach().float().cpu() for m in maps]

    def _fused(self, maps: torch.Tensor, data: PreparedData, pos: int, flows: np.ndarray | None) -> torch.Tensor:
        fusion = self.fusion
        if fusion is None or fusion.neighbours <= 0:
            return maps
        if not fusion.warp:
            return fuse_maps(maps, None, None, fusion)
        flows = flows if flows is not None else self.flows(data)
        s = data.slices[pos]
        clip = torch.from_numpy(np.asarray(flows[s.start:s.stop], dtype=np.float32))
        return fuse_maps(maps, clip[:, 0], clip[:, 1], fusion)


def _targeting(method: MapSource, name: str) -> MapSource:
    """The same method's maps of class ``name``."""
    other = copy.copy(method)
    other.target = name
    return other


def save_maps(producer: MapProducer, data: PreparedData, out_dir: str | Path,
              splits: tuple[str, ...] = ("val", "test"), batch_size: int = 32) -> int:
    """Write the maps of every *before* frame of ``splits`` to ``out_dir/<video id>/<frame name>.png``.

    What a run whose test frames have no GT masks keeps instead of a score: exactly the maps the
    evaluator would score (:meth:`MapProducer.video`), upsampled to each frame's original size
    (:func:`upsample`) and written as 8-bit grayscale (0 = 0.0, 255 = 1.0).

    Args:
        producer: the run's maps.
        data: its prepared data.
        out_dir: folder to write (created).
        splits: whose before videos (by default the held-out ones).
        batch_size: frames per forward pass.

    Returns:
        The number of maps written.
    """
    flows = producer.fusion_flows(data)
    out_dir = Path(out_dir)
    written = 0
    for pos, video in enumerate(data.index.videos):
        if video.label != "before" or video.split not in splits:
            continue
        maps = producer.video(data, pos, flows, batch_size)
        size = data.slices[pos].frame_size
        folder = out_dir / video.id
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(video.frames.names):
            scores = upsample(maps[i], size)
            write_image(folder / f"{name}.png", np.clip(scores * 255 + 0.5, 0, 255).astype(np.uint8))
            written += 1
    return written
