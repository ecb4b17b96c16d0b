"""The second stage: a fully supervised segmenter trained on a finished run's pseudo-labels (``wsbench distill``).

1. **Pseudo-labels.** Every frame of the source run's **train** split gets the run's own mask in
   the three-label domain, exactly as ``wsbench export`` writes it: the run's maps
   (:meth:`~wsbench.inference.TrainedRun.video_maps`: its classifier, method, multi-scale/flip
   inference and fusion) cut at its val-chosen threshold with the cached foreground
   (:func:`~wsbench.inference.label_mask`: 0 background, 1 legal, 2 illegal); *after* frames are
   legal + background. They are computed at the segmenter's training resolution. With an
   **ignore band** ``(low, high)``, foreground pixels of *before* frames whose map lies in
   ``[low, high)`` get :data:`IGNORE` and are not trained on.
2. **Training.** A segmentation_models_pytorch network (architecture by name, encoder by name:
   ``tu-<timm model>`` for any timm backbone) learns the labels from the **original** frames (no
   background model at inference) with cross-entropy + Dice (smp's ``DiceLoss``), both ignoring
   :data:`IGNORE`; a fixed number of epochs, AdamW with a one-cycle schedule, horizontal flips. A
   checkpoint is written after every epoch, so ``--resume`` continues an interrupted run and ends
   with the weights an uninterrupted one would have. No GT mask is read for training or model
   selection.
3. **Scoring.** The segmenter's probability of *illegal* is presented to the evaluator as a
   method's maps (:class:`SegmenterMaps`), so :func:`wsbench.evaluate.evaluate_maps` scores it
   exactly like a CAM run: threshold chosen on val, test IoU, mIoU, stability, the authors'
   protocol (the class maps are the three class probabilities), maps frames/s. The quality of the
   pseudo-labels themselves on the train split (where masks exist) is recorded beside it
   (:func:`wsbench.evaluate.split_iou`, an evaluation only).

The result is a run directory like any other, with ``config.json`` naming the source run and its
configuration hash, ``result.json``, ``checkpoint.pt`` while training and ``segmenter.pt`` after.
"""

from __future__ import annotations

import dataclasses
import io
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .files import atomic_write, check_outside, config_hash
from .methods import METHODS, Method
from .recipes import MAX_IMAGE_SIZE
from .runs import (
    RunRecord,
    create_run,
    environment,
    finish_run,
    iter_runs,
)
from .schema import Int, ListOf, Optional, from_dataclass

__all__ = ["DISTILL_RECIPES", "IGNORE", "DistillRecipe", "DistilledRun", "SegmenterMaps", "SegmenterNet",
           "distill", "distill_hash", "distill_once", "distill_recipe", "distilled_record", "ignore_band_labels",
           "ignore_band_warning", "is_distilled", "load_distilled", "one_cycle", "pseudo_labels"]

#: label of pixels that are not trained on (the ignore band)
IGNORE = 255
#: class index of the segmenter's output per classifier class name (the evaluator asks for these)
_CLASS_INDEX = {"background": 0, "after": 1, "before": 2}
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True)
class DistillRecipe:
    """How the segmenter is built and trained (recorded in ``config.json``, hashed).

    Attributes:
        architecture: smp architecture name (``Unet``, ``UnetPlusPlus``, ``FPN``, ``DeepLabV3Plus``, ...).
        encoder: smp encoder name; ``tu-<name>`` is any timm backbone.
        encoder_depth: encoder stages used (3–5; fewer is faster at low resolution).
        decoder_channels: U-Net-family decoder widths, one per stage (empty: the architecture's default).
        pretrained: a local ``.pt`` state dict for the encoder (``None``: from scratch).
        epochs: training epochs.
        batch_size: frames per step.
        lr: peak learning rate (AdamW, one-cycle).
        weight_decay: AdamW weight decay.
        image_size: ``(w, h)`` training and inference resolution (``None``: the source run's).
        ignore_band: ``(low, high)``: foreground pixels of before frames whose map lies in
            ``[low, high)`` are not trained on (``None``: all pixels are).
        dice_weight: weight of smp's Dice loss next to cross-entropy (0: cross-entropy only).
    """

    architecture: str = "Unet"
    encoder: str = "tu-resnet10t"
    encoder_depth: int = 3
    decoder_channels: tuple[int, ...] = (32, 16, 8)
    pretrained: str | None = None
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    image_size: tuple[int, int] | None = None
    ignore_band: tuple[float, float] | None = None
    dice_weight: float = 0.5

    def as_config(self) -> dict[str, Any]:
        """The recipe as JSON (tuples as lists)."""
        out = dataclasses.asdict(self)
        for key in ("decoder_channels", "image_size", "ignore_band"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out


#: named distill recipes: ``cpu`` trains from scratch on 2 CPU cores in minutes (the synthetic belt's
#: default), ``smoke`` checks the pipeline in seconds (its numbers mean nothing)
DISTILL_RECIPES = {
    "cpu": DistillRecipe(),
    "smoke": DistillRecipe(encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8), epochs=1,
                           batch_size=8, image_size=(32, 32)),
}


#: the types of a distill recipe's fields (the range checks are :func:`_check_recipe`'s)
_RECIPE_SCHEMA = from_dataclass(DistillRecipe)
_RECIPE_SCHEMA.fields["decoder_channels"] = Optional(ListOf(Int(1), min_len=1))


def distill_recipe(name: str = "cpu", source: str = "distill", **overrides: Any) -> DistillRecipe:
    """A named recipe (:data:`DISTILL_RECIPES`) with some fields replaced (``None`` values are ignored).

    Args:
        name: the named recipe.
        source: what the overrides come from, named in messages (a run's ``config.json``).
        **overrides: field values.

    Raises:
        UserError: unknown recipe or field, a value of the wrong type or out of range.
    """
    if name not in DISTILL_RECIPES:
        raise UserError(f"unknown distill recipe {name!r}; available: {', '.join(DISTILL_RECIPES)}")
    fields = {f.name for f in dataclasses.fields(DistillRecipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown distill option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values = {k: v for k, v in overrides.items() if v is not None}
    _RECIPE_SCHEMA.check(values, source)
    for key in ("decoder_channels", "image_size", "ignore_band"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    recipe = dataclasses.replace(DISTILL_RECIPES[name], **values)
    _check_recipe(recipe)
    return recipe


def _check_recipe(recipe: DistillRecipe) -> None:
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise UserError("distill: epochs and batch_size must be at least 1")
    if not 1 <= recipe.encoder_depth <= 5:
        raise UserError(f"distill: encoder_depth must be 1..5, not {recipe.encoder_depth}")
    if recipe.decoder_channels and len(recipe.decoder_channels) != recipe.encoder_depth:
        raise UserError(f"distill: decoder_channels needs one width per encoder stage ({recipe.encoder_depth}), "
                        f"got {len(recipe.decoder_channels)}")
    if not (recipe.lr > 0 and recipe.weight_decay >= 0 and recipe.dice_weight >= 0):
        raise UserError("distill: lr must be above 0, weight_decay and dice_weight at least 0")
    for key, size in (("image_size", 2), ("ignore_band", 2)):
        value = getattr(recipe, key)
        if value is not None and (not isinstance(value, (tuple, list)) or len(value) != size):
            raise UserError(f"distill: {key} must be {size} numbers, not {value!r}")
    if recipe.image_size is not None:
        stride = 2 ** recipe.encoder_depth
        w, h = recipe.image_size
        if not all(isinstance(v, int) and 16 <= v <= MAX_IMAGE_SIZE for v in (w, h)):
            raise UserError(f"--image-size {w}x{h}: sides must be whole numbers of 16 to {MAX_IMAGE_SIZE} pixels")
        if w < stride or h < stride or w % stride or h % stride:
            raise UserError(f"--image-size {w}x{h}: both sides must be multiples of {stride} "
                            f"(2^encoder_depth) for the segmenter")
    if recipe.ignore_band is not None:
        low, high = recipe.ignore_band
        if not 0 <= low <= high <= 1:
            raise UserError(f"--ignore-band {low},{high}: need 0 <= LOW <= HIGH <= 1")


# -- the network and its adapter to the evaluator ---------------------------------------------
class SegmenterNet(nn.Module):
    """An smp segmentation network with what the evaluator asks of a classifier.

    Attributes:
        net: the smp model, 3 output classes (0 background, 1 legal, 2 illegal).
        classes: the classifier class names the evaluator may ask maps of (``before`` is *illegal*,
            ``after`` *legal*, ``background`` the belt).
    """

    classes = ("after", "before", "background")
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, recipe: DistillRecipe) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        kwargs: dict[str, Any] = {"encoder_depth": recipe.encoder_depth}
        if recipe.decoder_channels:
            kwargs["decoder_channels"] = tuple(recipe.decoder_channels)
        try:
            self.net = smp.create_model(recipe.architecture, encoder_name=recipe.encoder, encoder_weights=None,
                                        classes=3, **kwargs)
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            message = str(err).strip("'\"").splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"segmenter {recipe.architecture} with encoder {recipe.encoder}: {message}") from None
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0–255 float) images (B, 3, H, W) → normalised float input."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3, H, W)."""
        return self.net(x)

    def load_encoder(self, path: str | Path) -> None:
        """Load a local state dict into the encoder (``--pretrained``); keys may carry an ``encoder.`` prefix."""
        from .files import load_torch, state_dict_of

        state = state_dict_of(load_torch(path, "--pretrained "), path, "--pretrained ", keys=("state_dict",))
        state = {k.removeprefix("encoder."): v for k, v in state.items()}
        encoder = self.net.encoder
        target = encoder.model if hasattr(encoder, "model") else encoder  # timm encoders wrap a timm model
        if not set(state) & set(target.state_dict()):
            raise UserError(f"--pretrained {path}: none of its keys fit the encoder {type(target).__name__}")
        try:
            target.load_state_dict(state, strict=False)  # a classifier's head (fc.*) is not part of the encoder
        except RuntimeError as err:
            last = str(err).splitlines()[-1].strip()
            raise UserError(f"--pretrained {path}: does not fit the encoder ({last})") from None


class SegmenterMaps(Method):
    """The segmenter's class probabilities as a method's maps, so the evaluator scores it like any run.

    ``maps`` of target ``before`` is the probability of *illegal*, ``after`` of *legal*,
    ``background`` of the belt (softmax over the three outputs, at input resolution). No fusion.

    Args:
        registered_name: a registered method whose registry entry the evaluator reads (only its
            ``needs_grad``, which must be ``False``: the segmenter's maps need no autograd).
    """

    def __init__(self, registered_name: str = "cam") -> None:
        super().__init__()
        self.name = registered_name

    def maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W) probability of the class :attr:`target` stands for."""
        return torch.softmax(model(images).float(), dim=1)[:, _CLASS_INDEX[self.target]]

    def raw_maps(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """The same probabilities (a segmenter has no unnormalised maps)."""
        return self.maps(model, images)

    def fusion(self) -> None:
        """No temporal fusion: one forward pass per frame."""
        return


def _evaluator_name(source_method: str) -> str:
    """The source method's name when the registry says its maps need no autograd, else ``cam``."""
    from .registry import RegistryError

    try:
        needs_grad = METHODS.entry(source_method).meta.needs_grad
    except RegistryError:  # a plugin method no longer installed: any built-in without autograd does
        return "cam"
    return "cam" if needs_grad else source_method


# -- pseudo-labels ------------------------------------------------------------------------------
def ignore_band_warning(band: tuple[float, float] | None, threshold: float) -> str | None:
    """Why an ignore band is suspicious for a source run's threshold, or ``None``.

    The band is meant to leave out the uncertain pixels around the threshold that cuts the maps
    into pseudo-labels; a band ``[low, high)`` that does not contain it ignores confident pixels on
    one side of the cut and trains on the uncertain ones.

    Args:
        band: the distill recipe's ``ignore_band`` (``None``: no band).
        threshold: the source run's threshold.

    Returns:
        One line naming the band and the threshold, or ``None`` when the band contains it.
    """
    if band is None or band[0] <= threshold < band[1]:
        return None
    return (f"--ignore-band {band[0]},{band[1]} does not contain the source run's threshold {threshold:.2f}: it "
            "ignores confident pixels on one side of the cut, not the uncertain ones around it")


def ignore_band_labels(labels: np.ndarray, scores: np.ndarray, foreground: np.ndarray,
                       band: tuple[float, float] | None) -> np.ndarray:
    """Labels with the ignore band applied: foreground pixels whose score lies in ``[low, high)`` become :data:`IGNORE`.

    Args:
        labels: (H, W) uint8 labels of :func:`~wsbench.inference.label_mask`.
        scores: (H, W) maps in [0, 1] at the same size.
        foreground: (H, W) boolean foreground.
        band: ``(low, high)`` or ``None`` (labels returned unchanged).

    Returns:
        A new (H, W) uint8 array.
    """
    out = labels.copy()
    if band is not None:
        low, high = band
        out[foreground & (scores >= low) & (scores < high)] = IGNORE
    return out


def pseudo_labels(trained: Any, data: Any, size_data: Any, band: tuple[float, float] | None,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, dict[int, torch.Tensor]]:
    """The train split's pseudo-labels at the segmenter's resolution.

    Args:
        trained: the source run (:func:`wsbench.inference.load_run`).
        data: its prepared data at its own resolution (its maps are computed from it).
        size_data: the same data set prepared at the segmenter's resolution (frames, foreground).
        band: the ignore band, or ``None``.
        batch_size: frames per forward pass of the source run.

    Returns:
        ``(frame indices into size_data.frames, (N, h, w) uint8 labels, {video position: maps of the
        train before videos})``.
    """
    import cv2
    from tqdm.auto import tqdm

    from .inference import label_mask
    from .progress import show_progress

    flows = trained.flows(data)
    w, h = size_data.image_size
    index, labels, maps_of = [], [], {}
    videos = [(pos, v) for pos, v in enumerate(data.index.videos) if v.split == "train"]
    for pos, video in tqdm(videos, desc="pseudo-labels", unit="video", leave=False,
                           disable=not show_progress()):
        maps = trained.video_maps(data, pos, flows, batch_size) if video.label == "before" else None
        if maps is not None:
            maps_of[pos] = maps
        s = size_data.slices[pos]
        for i in range(len(video)):
            fg = np.asarray(size_data.fg[s.start + i]) > 0
            scores = None if maps is None else cv2.resize(maps[i].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            label = label_mask(scores, fg, trained.threshold)
            if scores is not None:
                label = ignore_band_labels(label, scores, fg, band)
            index.append(s.start + i)
            labels.append(label)
    if not index:
        raise UserError(f"data set {data.index.name!r} has no train frames to distill from")
    return np.asarray(index, np.int64), np.stack(labels), maps_of


# -- training -----------------------------------------------------------------------------------
def _save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The segmenter's learning-rate schedule: one cycle with a 20 % warm-up, for any number of steps.

    At 20 % ``OneCycleLR``'s warm-up ends exactly at the first step with five steps (it divides by
    zero) and before it with fewer (it skips the warm-up), as a smoke recipe on a small data set
    gives: with three to five steps the warm-up ends at the second step instead, and one or two
    steps run at ``max_lr`` (no cycle fits). From six steps on it is ``OneCycleLR(pct_start=0.2)``
    exactly.

    Args:
        opt: the optimiser.
        max_lr: the peak learning rate.
        total_steps: optimiser steps of the whole training (at least 1).

    Returns:
        The scheduler, stepped once after every optimiser step.
    """
    if total_steps <= 2:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    pct_start = 0.2 if 0.2 * total_steps > 1 else 2 / total_steps
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)


def _train(net: SegmenterNet, frames: np.ndarray, labels: np.ndarray, recipe: DistillRecipe, seed: int,
           device: torch.device, checkpoint: Path, resume: bool) -> float:
    """Train ``net`` in place; returns the seconds spent training in this process."""
    import segmentation_models_pytorch as smp
    from tqdm.auto import tqdm

    from .files import load_torch
    from .progress import show_progress

    torch.manual_seed(seed)
    n = len(frames)
    steps = (n + recipe.batch_size - 1) // recipe.batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = one_cycle(opt, recipe.lr, steps * recipe.epochs)
    start = 0
    if resume and checkpoint.is_file():
        state = load_torch(checkpoint)
        try:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start = int(state["epoch"])
        except (KeyError, IndexError, RuntimeError, ValueError, TypeError, AttributeError) as err:
            raise UserError(f"{checkpoint}: not a checkpoint of this segmenter ({type(err).__name__}); "
                            "delete it to train from the start") from None
    ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
    dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE)
    started = time.perf_counter()
    for epoch in range(start, recipe.epochs):
        net.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch)).numpy()
        flips = torch.rand(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch + 7919)).numpy() < 0.5
        for b in tqdm(range(steps), desc=f"distill epoch {epoch + 1}/{recipe.epochs}", leave=False,
                      disable=not show_progress()):
            idx = np.sort(order[b * recipe.batch_size:(b + 1) * recipe.batch_size])
            x = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2)
            y = torch.from_numpy(labels[idx].astype(np.int64))
            flip = torch.from_numpy(flips[idx])
            x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            x, y = net.normalize(x.to(device)), y.to(device)
            logits = net(x)
            loss = ce(logits, y)
            if recipe.dice_weight:
                loss = loss + recipe.dice_weight * dice(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        _save(checkpoint, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch + 1})
    return time.perf_counter() - started


# -- a distilled run ----------------------------------------------------------------------------
def is_distilled(record: RunRecord) -> bool:
    """Whether a run record is a distilled segmenter's."""
    return isinstance(record.config.get("distill"), dict)


def distilled_record(run: str | Path, runs_dir: str | Path) -> RunRecord | None:
    """The record of ``run`` (an id in ``runs_dir`` or a run directory) when it is a distilled run, else ``None``.

    Raises:
        UserError: the run's ``config.json`` or ``result.json`` is unreadable.
    """
    path = Path(run)
    if not (path / "config.json").is_file():
        path = Path(runs_dir) / str(run)
    if not (path / "config.json").is_file():
        return None  # load_run words the error
    try:
        record = RunRecord.load(path)
    except ValueError as err:
        raise UserError(str(err)) from None
    return record if is_distilled(record) else None


@dataclasses.dataclass
class DistilledRun:
    """A finished distilled run, ready to segment frames.

    Attributes:
        record: its run record.
        model: the segmenter, eval mode, on ``device``.
        threshold: the val-chosen threshold on the probability of *illegal*.
        image_size: ``(w, h)`` input resolution.
        device: where it runs.
    """

    record: RunRecord
    model: SegmenterNet
    threshold: float
    image_size: tuple[int, int]
    device: torch.device

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.record.run_id

    def probabilities(self, frames: np.ndarray) -> torch.Tensor:
        """(B, 3, h, w) class probabilities of RGB uint8 frames (B, h, w, 3) at :attr:`image_size`, on the CPU."""
        from .device import autocast, to_device

        x = to_device(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), self.device)
        with torch.inference_mode(), autocast(self.device):
            return torch.softmax(self.model(self.model.normalize(x)).float(), dim=1).cpu()

    def label_masks(self, probabilities: np.ndarray) -> np.ndarray:
        """Three-label masks from (B, 3, H, W) probabilities: *illegal* where its probability reaches
        the threshold (the evaluator's binning), else the likelier of belt and legal."""
        from .evaluate import BINS, score_bins

        illegal = score_bins(probabilities[:, 2]) >= int(round(self.threshold * BINS))
        out = (probabilities[:, 1] > probabilities[:, 0]).astype(np.uint8)
        out[illegal] = 2
        return out

    def summary(self) -> dict[str, Any]:
        """Provenance written beside segmented masks."""
        result = self.record.result or {}
        return {"run_id": self.run_id, "method": result.get("method"), "dataset": result.get("dataset"),
                "config_hash": result.get("config_hash"), "threshold": self.threshold,
                "threshold_source": result.get("metrics", {}).get("threshold_source"),
                "segmenter": {k: self.record.config["recipe"].get(k) for k in ("architecture", "encoder")},
                "source_run": self.record.config["distill"].get("source_run"),
                "background_removal": False, "image_size": list(self.image_size)}


def load_distilled(record: RunRecord, device: str = "auto") -> DistilledRun:
    """Load a finished distilled run's segmenter.

    Raises:
        UserError: unfinished, or its weights are missing or do not fit.
    """
    from .device import resolve_device
    from .files import load_torch, state_dict_of

    if record.result is None:
        raise UserError(f"{record.path}: the run has not finished (no result.json); finish it with "
                        "wsbench distill ... --resume")
    recipe = distill_recipe("cpu", f"{record.path / 'config.json'}: recipe",
                            **{k: v for k, v in record.config["recipe"].items() if k != "pretrained"})
    weights = record.path / "segmenter.pt"
    state = load_torch(weights)  # before the network is built: a missing or junk file is refused at once
    net = SegmenterNet(recipe)
    try:
        net.load_state_dict(state_dict_of(state, weights))
    except (RuntimeError, TypeError, AttributeError, ValueError) as err:
        raise UserError(f"{weights}: does not fit the recorded segmenter ({type(err).__name__})") from None
    torch_device = resolve_device(device)
    net.to(torch_device).eval()
    size = record.result["distill"]["image_size"]
    return DistilledRun(record=record, model=net, threshold=float(record.result["metrics"]["threshold"]),
                        image_size=(int(size[0]), int(size[1])), device=torch_device)


def _environment() -> dict[str, Any]:
    """:func:`wsbench.runs.environment` plus the segmentation_models_pytorch version."""
    import importlib.metadata as md

    env = environment()
    try:
        env["packages"]["segmentation-models-pytorch"] = md.version("segmentation-models-pytorch")
    except md.PackageNotFoundError:
        env["packages"]["segmentation-models-pytorch"] = None
    return env


def distill_hash(source: RunRecord, recipe: DistillRecipe, seed: int) -> str:
    """The configuration hash of distilling ``source`` with ``recipe`` and ``seed`` (the source run's id
    and configuration hash, the recipe with its image size resolved, the seed)."""
    size = recipe.image_size or tuple(source.config["recipe"]["image_size"])
    return config_hash({"source_run": source.run_id, "source_config_hash": (source.result or {}).get("config_hash"),
                        "recipe": dict(recipe.as_config(), image_size=list(size)), "seed": seed})


def distill_once(source: RunRecord, runs_dir: str | Path, recipe: DistillRecipe, seed: int = 0,
                 device: str = "auto", cache_dir: str | Path | None = None) -> tuple[RunRecord, bool]:
    """:func:`distill` unless a finished distilled run of the same configuration exists (suites).

    Returns:
        ``(record, ran)``: the finished record and whether it was made now (an interrupted one is resumed).
    """
    wanted = distill_hash(source, recipe, seed)
    done = [r for r in iter_runs(runs_dir) if is_distilled(r) and r.config.get("config_hash") == wanted]
    if done:
        return done[-1], False
    return distill(source.path, runs_dir, recipe, seed, device, resume=True, cache_dir=cache_dir), True


def distill(run: str | Path, runs_dir: str | Path, recipe: DistillRecipe, seed: int = 0, device: str = "auto",
            resume: bool = False, cache_dir: str | Path | None = None) -> RunRecord:
    """Train a segmenter on a finished run's train-split pseudo-labels, score it and record the run.

    Args:
        run: the source run (id in ``runs_dir`` or a run directory).
        runs_dir: where the new run goes.
        recipe: the segmenter and its training.
        seed: training seed.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: continue the latest unfinished distilled run with the same configuration.
        cache_dir: cache root of the frame, foreground and flow caches.

    Returns:
        The finished record.

    Raises:
        UserError: the source run is unfinished or itself distilled, the source's data set has no
            train frames, or a bad recipe.
    """
    from .data.cache import prepare, resolve_cache_dir
    from .evaluate import evaluate_maps, split_iou
    from .inference import load_run, open_data
    from .report import SOURCE_KEYS

    started = time.perf_counter()
    _check_recipe(recipe)
    runs_dir = Path(runs_dir)
    source = distilled_record(run, runs_dir)
    if source is not None:
        raise UserError(f"{source.path}: is a distilled run; distill from a CAM run")
    trained = load_run(run, runs_dir, device)
    src_config, src_result = trained.record.config, trained.record.result or {}
    if src_result.get("metrics", {}).get("threshold") is None or not np.isfinite(trained.threshold):
        raise UserError(f"{trained.record.path}: the run has no threshold (no GT masks to choose it), "
                        "so it has no pseudo-labels to distill")
    if recipe.pretrained is not None and not Path(recipe.pretrained).is_file():
        raise UserError(f"--pretrained {recipe.pretrained}: file not found")
    check_outside(runs_dir, "--runs-dir", [src_config.get("data_root")])
    check_outside(resolve_cache_dir(cache_dir), "--cache-dir", [src_config.get("data_root")])
    band_warning = ignore_band_warning(recipe.ignore_band, trained.threshold)
    if band_warning:
        warnings.warn(band_warning, stacklevel=2)
    data = open_data(trained, cache_dir)
    size = tuple(recipe.image_size or data.image_size)
    stride = 2 ** recipe.encoder_depth
    if size[0] % stride or size[1] % stride:
        raise UserError(f"the source run's resolution {size[0]}x{size[1]} is not a multiple of {stride} "
                        "(2^encoder_depth); give --image-size")
    rec = trained.recipe
    size_data = data if size == tuple(data.image_size) else prepare(data.index, size, cache_dir, background=rec)
    method_name = f"{src_result.get('method', src_config['method'])}-distill"
    recipe_config = dict(recipe.as_config(), image_size=list(size))
    config = {
        "method": method_name, "method_options": {}, "dataset": src_config["dataset"],
        "data_root": src_config.get("data_root"), "split_seed": src_config.get("split_seed", 0), "seed": seed,
        "recipe": recipe_config, "fusion": None,
        "distill": {"source_run": trained.run_id, "source_config_hash": src_result.get("config_hash"),
                    "source_method": src_result.get("method", src_config["method"]),
                    "source_threshold": trained.threshold,
                    # what the stages table groups by, as the comparison does (wsbench.report.latest_runs)
                    "source_config": {k: src_config[k] for k in SOURCE_KEYS if k in src_config}},
        "config_hash": distill_hash(trained.record, recipe, seed),
        "data_fingerprint": src_config.get("data_fingerprint"),
        "environment": _environment(),
    }
    for key in ("dataset_options", "resplit", "dataset_info", "data_content", "data_parts"):  # as the source
        # recorded them (tables group by them, a reopened run checks them)
        if key in src_config:
            config[key] = src_config[key]
    run_id = None
    if resume:
        unfinished = [r for r in iter_runs(runs_dir, finished=False)
                      if r.config.get("config_hash") == config["config_hash"] and is_distilled(r)]
        run_id = unfinished[-1].run_id if unfinished else None
    record = create_run(runs_dir, config, run_id=run_id)

    t0 = time.perf_counter()
    index, labels, train_maps = pseudo_labels(trained, data, size_data, recipe.ignore_band)
    label_seconds = time.perf_counter() - t0
    train_quality = split_iou(data, train_maps, trained.threshold)  # an evaluation: never feeds training
    del train_maps

    torch_device = trained.device
    torch.manual_seed(seed)
    net = SegmenterNet(recipe)
    if recipe.pretrained is not None:
        net.load_encoder(recipe.pretrained)
    net.to(torch_device)
    frames = np.asarray(size_data.frames[index])
    train_seconds = _train(net, frames, labels, recipe, seed, torch_device, record.path / "checkpoint.pt",
                           resume=run_id is not None)
    net.eval()
    _save(record.path / "segmenter.pt", net.state_dict())

    # the evaluator asks of a model only what SegmenterNet has: eval(), normalize(), classes and forward
    evaluation = evaluate_maps(SegmenterMaps(_evaluator_name(config["distill"]["source_method"])), cast(Any, net),
                               size_data,
                               torch_device, background_removal=False, fusion=None, flow=rec.flow,
                               flow_options=rec.flow_options())
    pixels = np.bincount(labels.ravel(), minlength=IGNORE + 1)
    src_metrics = src_result.get("metrics", {})
    result = {
        "run_id": record.run_id, "method": method_name, "dataset": src_config["dataset"], "seed": seed,
        "config_hash": config["config_hash"], "metrics": evaluation["metrics"], "baselines": evaluation["baselines"],
        "curves": evaluation["curves"], "counts": evaluation["counts"], "fusion": None,
        "distill": {
            "source_run": trained.run_id, "source_method": config["distill"]["source_method"],
            "source_seed": src_result.get("seed"), "source_config_hash": src_result.get("config_hash"),
            "source_iou_illegal": src_metrics.get("iou_illegal"), "source_miou": src_metrics.get("miou"),
            "source_maps_frames_per_second": (src_result.get("timings") or {}).get("maps_frames_per_second"),
            "source_collapse": src_result.get("collapse"),  # a collapsed source gives trivial pseudo-labels
            "pseudo_labels_train": train_quality,
            "train_frames": len(index),
            "label_pixels": {"background": int(pixels[0]), "legal": int(pixels[1]), "illegal": int(pixels[2]),
                             "ignored": int(pixels[IGNORE])},
            "image_size": list(size),
        },
        "timings": {"pseudo_labels": round(label_seconds, 3), "train": round(train_seconds, 3),
                    "cache": round(size_data.timings["frames"], 3), "flow": round(size_data.timings["flow"], 3),
                    "maps": evaluation["timings"]["maps"],
                    "maps_frames_per_second": evaluation["timings"]["maps_frames_per_second"],
                    "total": round(time.perf_counter() - started, 3)},
        "config": config,
    }
    return finish_run(record, result)
