"""The base class of a CAM method: what the trainer and evaluator ask of it.

A method is small because everything shared lives elsewhere. It says

- **which classifier** its maps come from (:meth:`Method.classifier`): its own training recipe,
  or another registered method's (Frame-to-Frame explains the standard classifier that
  ``gradcam`` trains, so both train once); the trainer builds the :attr:`Method.head` of the
  method named there;
- **its loss terms** for a training batch (:meth:`Method.training_losses`), if it trains;
- **its maps** for a batch of frames (:meth:`Method.maps`), at whatever resolution is natural
  (feature resolution for CAMs), values in [0, 1], class *before*;
- its **raw maps** (:meth:`Method.raw_maps`: not normalised, for fusion on raw maps; the default,
  ReLU of the class map, is right for every method whose maps are CAMs);
- optionally **temporal fusion** of the maps at inference (:meth:`Method.fusion`).

The contract, in one place:

========================  =====================================================  ==========================
hook                      receives                                               returns
========================  =====================================================  ==========================
``__init__(**options)``   the ``Options`` fields (CLI ``--flag`` values)          —, sets ``self.options``
``classifier()``          —                                                      ``(method name, options)``
``clip_length()``         —                                                      frames per training sample
``training_losses(...)``  the model (:class:`~wsbench.model.CamNet`), a          ``{name: LossTerm}``
                          :class:`Batch` (images, labels, and for clips the
                          cached flows) and the :class:`Progress` (epoch, step)
``maps(model, images)``   the trained model (eval mode) and normalised frames    (B, h, w) tensor in [0, 1]
``raw_maps(model, x)``    the same                                               (B, h, w) tensor ≥ 0
``fusion()``              —                                                      :class:`Fusion` or ``None``
``modules()``             —                                                      ``(spatial, temporal)``
                                                                                 or ``None``
========================  =====================================================  ==========================

A method's loss weights are its own options (``puzzlecam``'s and ``tccam``'s ``alpha_max``,
``beta_max``, ``weight_ramp``), so they enter its classifier key and no other method's; it
computes the weight at each step with :func:`wsbench.losses.ramp_weight` from the
:class:`Progress` the trainer passes. The trainer does data loading, augmentation, AMP, checkpoints and logging; it
loads and caches the optical flow a clip batch needs. The evaluator does per-video inference,
temporal fusion (warping neighbours with the cached flow when :attr:`Fusion.warp`), upsampling,
thresholds, metrics and baselines. A method never opens files, never sees GT masks and never
estimates flow itself. Third-party methods use exactly this API from an installed package (see
``plugins/wsbench-tcam`` and CONTRIBUTING.md).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

if TYPE_CHECKING:  # torch and timm load on first use, so listing methods and --help stay fast
    import torch

    from ..model import CamNet

__all__ = ["Batch", "Fusion", "LossTerm", "Method", "NoOptions", "Progress", "has_raw_maps"]


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a method that takes none."""


class LossTerm(NamedTuple):
    """One loss term: its value and the weight it enters the total with (logged separately)."""

    value: torch.Tensor
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where training is. Loss weights are the methods' own (see :func:`wsbench.losses.ramp_weight`).

    Attributes:
        epoch: 0-based epoch.
        step: global optimisation step.
        steps_per_epoch: steps in one epoch.
        total_steps: steps of the whole training.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    total_steps: int


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
    """Temporal fusion of one video's maps at inference, done by the evaluator.

    For frame t, the maps of frames t±1 … t±k (or only t−1 … t−k when ``causal``) are brought
    into frame t — warped with the cached optical flow when ``warp``, taken as they are otherwise —
    and aggregated pixel-wise with frame t's own map. Near the ends of a video fewer neighbours
    exist; each frame uses those it has.

    Attributes:
        neighbours: k, how many frames on each side (``causal``: before t) take part.
        mode: ``"max"`` or ``"mean"`` over the frame itself and its valid neighbours.
        warp: warp neighbours into frame t with the cached flow (chained one frame at a time,
            see :func:`wsbench.flow.warp_chain`); a warped neighbour counts only where its sample
            point lies inside that frame. ``False``: the fusion reads no flow, and each
            neighbour's map is used pixel for pixel (the evaluator still reads the cached flow
            for its temporal-stability metric).
        causal: only previous frames (what an online system has seen), never later ones.
        on: ``"maps"``: the method's maps (each frame's in [0, 1]) are fused; ``"raw"``: its
            raw maps (:meth:`Method.raw_maps`, not normalised) are fused and each fused frame
            is then divided by its maximum — the inference of the authors' POF-CAM, which takes
            max(warped t−1, t, warped t+1) of ReLU'd class maps and normalises afterwards.
    """

    neighbours: int
    mode: str = "max"
    warp: bool = True
    causal: bool = False
    on: Literal["maps", "raw"] = "maps"

    def as_config(self) -> dict[str, Any]:
        """The fusion as recorded in ``config.json`` / ``result.json`` (``Fusion(**it)`` rebuilds it).

        ``on`` is left out while it is ``"maps"``, so configurations written before it existed
        keep their hash.
        """
        out = dataclasses.asdict(self)
        if out["on"] == "maps":
            del out["on"]
        return out


class Method:
    """Base class of CAM methods. Subclass it, register it, and implement what differs.

    Class attributes:
        Options: a frozen dataclass of the method's own options; each field becomes a
            ``wsbench run`` option (``--name`` / ``--no-name`` for booleans) and its
            ``metadata["help"]`` the help text.
        target: class whose maps are the masks (``"before"``: the illegal objects).
        head: the classifier's head when this method trains it (see :class:`~wsbench.model.CamNet`):
            ``"classmap"`` (the paper's CAM network) or ``"linear"`` (a standard image classifier,
            what GradCAM explains).

    Args:
        **options: values of ``Options`` fields.
    """

    Options: ClassVar[type] = NoOptions
    target: str = "before"  # a class attribute; the evaluator sets it on a copy for another class's maps
    head: ClassVar[str] = "classmap"
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

        Called only on the method named by :meth:`classifier`, with the model in train mode.
        Default: the classification loss of the paper's eq. (5).

        Args:
            model: the classifier; ``model(images)`` gives class maps (N, C, h, w),
                ``model.pool(maps)`` logits (N, C), ``model.class_index(name)`` a class's channel.
            batch: images, multi-hot labels and, for clips (:meth:`clip_length` > 1), the cached
                flows between neighbouring frames.
            progress: epoch and step (for loss weights that follow a schedule,
                :func:`wsbench.losses.ramp_weight`).

        Returns:
            ``{term name: LossTerm(value, weight)}``; every term is logged separately.
        """
        from ..losses import classification_loss

        maps = model(batch.images)
        return {"cls": LossTerm(classification_loss(model.pool(maps), batch.labels))}

    # -- inference ---------------------------------------------------------------------------
    def maps(self, model: CamNet, images: torch.Tensor) -> torch.Tensor:
        """Maps of class :attr:`target` for normalised frames (B, 3, H, W).

        Called by the evaluator for the frames of one video at a time, in temporal order, with
        the model in eval mode; temporal fusion (:meth:`fusion`) is applied to the result.

        Args:
            model: the classifier named by :meth:`classifier`, trained.
            images: normalised frames (B, 3, H, W) on the model's device.

        Returns:
            (B, h, w) tensor in [0, 1] at the method's natural resolution. The evaluator runs
            this under ``torch.no_grad()`` unless the registry entry says ``needs_grad=True``.
            Default: the CAM of eq. (8) read off the class maps.
        """
        from ..model import cam_from_class_maps

        return cam_from_class_maps(model(images), model.class_index(self.target))

    def raw_maps(self, model: CamNet, images: torch.Tensor) -> torch.Tensor:
        """Maps of class :attr:`target` before any normalisation, for fusion on raw maps (``Fusion.on == "raw"``).

        Args:
            model: the classifier named by :meth:`classifier`, trained (eval mode).
            images: normalised frames (B, 3, H, W) on the model's device.

        Returns:
            (B, h, w) tensor ≥ 0 at the resolution of :meth:`maps`. Default: ReLU of the class
            map (the CAM of eq. 8 before its division by the maximum). A method that overrides
            :meth:`maps` but not this one has no raw maps, and fusion on raw maps refuses it
            (:func:`has_raw_maps`).
        """
        return model(images)[:, model.class_index(self.target)].relu()

    @property
    def needs_grad(self) -> bool:
        """Whether :meth:`maps` needs autograd: the registry entry's ``needs_grad`` (what map production asks)."""
        from . import METHODS

        return METHODS.entry(self.name).meta.needs_grad

    def fusion(self) -> Fusion | None:
        """Temporal fusion of the maps at inference (``None``: per-frame maps as they are).

        ``wsbench run --fuse-neighbours K`` replaces it with ``Fusion(K, --fuse-mode, on=--fuse-on)``.
        """
        return None

    def modules(self) -> tuple[bool, bool] | None:
        """The paper's (spatial, temporal) modules this method trains with, for the ablation table.

        ``None`` (the default): the method is not a row of the ablation (its maps are read
        differently, as GradCAM's). Recorded in each run's ``config.json`` (``method_info``).
        """
        return None


def has_raw_maps(method: Method) -> bool:
    """Whether ``method.raw_maps`` gives the raw form of its maps.

    True when the method overrides :meth:`Method.raw_maps`, or keeps the default :meth:`Method.maps`
    (whose raw form the default ``raw_maps`` is); False for methods such as GradCAM whose own maps
    have no raw form here.
    """
    cls = type(method)
    return cls.raw_maps is not Method.raw_maps or cls.maps is Method.maps
