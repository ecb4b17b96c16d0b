"""The one training loop every method uses.

It owns: data loading (single frames or clips with flows), calling the batch augmentation
(:mod:`wsbench.data.augment`), the α/β
schedule, the optimiser and learning-rate schedule, AMP (bf16) and a channels_last model on CUDA and under DDP,
a checkpoint after every epoch, resume, a per-step CSV log of every loss term, and stopping with
a clear message on a non-finite loss. It has no method-specific branch: the method named by
``Method.classifier()`` supplies the loss terms. Which classifier a run needs, and whether another
run trained it already, is :mod:`wsbench.classifiers`.

Determinism: the model is initialised from the seed; each epoch's shuffling and augmentation use
generators seeded from (seed, epoch), and the checkpoint holds the global RNG states (Python,
NumPy, torch), so a resumed run continues exactly as an uninterrupted one (on the same device).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import collapse, distributed, tblog
from .checkpoint import append_log, restart_log, resume_training, rng_states, save_state, seed_all
from .data.augment import augment
from .data.cache import PreparedData
from .data.torch_data import ClipDataset, FrameDataset, classes_for, collate, epoch_offset
from .device import autocast as device_autocast
from .device import default_workers, to_device
from .errors import UserError
from .files import atomic_write_json
from .methods import Batch, LossTerm, Method, Progress
from .model import CamNet, build_model
from .progress import show_messages, show_progress
from .recipes import Recipe

__all__ = ["Hardware", "TrainingDiverged", "train_classifier"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _make_dataset(method: Method, recipe: Recipe, data: PreparedData) -> FrameDataset | ClipDataset:
    clip = method.clip_length()
    if clip == 1:
        return FrameDataset(data, "train", recipe.background_removal)
    if data.index.static_after:
        raise UserError(f"temporal training needs after videos; {data.index.name} has only static after frames")
    with distributed.main_first():  # under torchrun rank 0 computes the flow cache, the others read it
        flows = data.flows(recipe.flow, **recipe.flow_options())
    return ClipDataset(data, "train", flows, clip_len=clip, stride=method.clip_stride(),
                       background_removal=recipe.background_removal)


def _to_batch(raw: dict, model: CamNet, device: torch.device, num_classes: int, clip_len: int,
              do_augment: bool, generator: torch.Generator) -> Batch:
    if clip_len == 1:
        images, flows = raw["image"], None
    else:
        images = raw["images"].flatten(0, 1)
        flows = to_device(raw["flows"], device)
    # channels_last on every device: frame and clip batches alike (oneDNN and cuDNN are faster with it)
    images = to_device(images, device).float().contiguous(memory_format=torch.channels_last)
    if do_augment:
        images, flows = augment(images, flows, generator, clip_len,
                                shard=(distributed.rank(), distributed.world_size()))
    images = model.normalize(images)
    labels = torch.nn.functional.one_hot(to_device(raw["label"], device), num_classes).float()
    labels = labels.repeat_interleave(clip_len, dim=0)
    return Batch(images=images, labels=labels, clip_len=clip_len, flows=flows)


def _lr_lambda(schedule: str, total_steps: int):
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "poly":
        return lambda step: (1 - min(step, total_steps - 1) / total_steps) ** 0.9
    warm = max(1, int(0.25 * total_steps))  # one-cycle: linear warm-up then cosine annealing

    def onecycle(step: int) -> float:
        if step < warm:
            return 0.04 + 0.96 * step / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return onecycle


def _duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _print_estimate(elapsed: float, done: int, todo: int, recipe: Recipe, device: torch.device) -> None:
    """One line on stderr after the first steps: how long the whole training will take at this pace."""
    from tqdm.auto import tqdm

    per_step = elapsed / done
    tqdm.write(f"estimate: training takes about {_duration(per_step * todo)} ({todo} step{'s' * (todo != 1)} at "
               f"{per_step:.2f} s per step on {device.type}, {recipe.epochs} epoch{'s' * (recipe.epochs != 1)} of "
               f"{recipe.backbone} at "
               f"{'x'.join(map(str, recipe.image_size))}), then map inference", file=sys.stderr)


class _Losses(nn.Module):
    """A method's loss terms as one module call, so DDP sees one forward per step (PuzzleCAM
    calls the model twice, on the images and on their tiles)."""

    def __init__(self, method: Method, model: nn.Module) -> None:
        super().__init__()
        self.method, self.model = method, model

    def forward(self, batch: Batch, progress: Progress) -> dict[str, LossTerm]:
        return self.method.training_losses(self.model, batch, progress)  # type: ignore[arg-type]


def _new_model(method: Method, recipe: Recipe, classes: tuple[str, ...], device: torch.device) -> CamNet:
    """The classifier to train, initialised from the global RNG (seeded just before), on ``device``."""
    model = build_model(recipe, classes, method.head).to(device)
    if device.type == "cuda" or distributed.world_size() > 1:
        # the batches are channels_last on every device, so their weight gradients are too; under DDP the
        # parameters must match them, or every step copies across layouts ("Grad strides do not match
        # bucket view strides"). A single CPU process keeps its contiguous weights (unchanged numerics).
        model = model.to(memory_format=torch.channels_last)
    return model


def _optimizer(model: CamNet, recipe: Recipe,
               total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The recipe's optimiser (SGD: the head at 10× the learning rate) and its learning-rate schedule."""
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    optimizer: torch.optim.Optimizer
    if recipe.optimizer == "sgd":
        groups: list[dict[str, Any]] = [{"params": body}, {"params": head, "lr": recipe.lr * 10}]
        optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(recipe.schedule, total_steps))


def _loss_module(method: Method, model: nn.Module, device: torch.device, compile_model: bool) -> nn.Module:
    """The method's losses as one module (compiled if asked), wrapped in DDP under torchrun."""
    # compiling a module gives a module (torch._dynamo's OptimizedModule), though typed as any callable
    compiled = cast(nn.Module, torch.compile(model)) if compile_model else model
    losses: nn.Module = _Losses(method, compiled)
    if distributed.world_size() > 1:
        losses = nn.parallel.DistributedDataParallel(losses, device_ids=[device] if device.type == "cuda" else None)
    return losses


def _epoch_loader(dataset: FrameDataset | ClipDataset, per_batch: int, seed: int, epoch: int, workers: int,
                  device: torch.device) -> DataLoader:
    """This rank's batches of one epoch, shuffled by a generator seeded from (seed, epoch)."""
    world = distributed.world_size()
    # wrapped to 64 bits, so every --seed works; identical for seeds below 2**64 / 100_003
    gen = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)
    sampler = distributed.ShardSampler(len(dataset), per_batch // world, gen, distributed.rank(), world)
    return DataLoader(dataset, batch_size=per_batch // world, sampler=sampler, num_workers=workers,
                      collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=False)


def _clip_offsets(dataset: FrameDataset | ClipDataset, seed: int, epochs: int) -> list[int] | None:
    """The clip offset of every epoch (recorded in ``train.json``), ``None`` for frame training."""
    if not isinstance(dataset, ClipDataset):
        return None
    return [epoch_offset(seed, epoch, dataset.stride) for epoch in range(epochs)]


def _check_finite(values: dict[str, float], epoch: int, step: int, ckpt: Path, saved: int) -> None:
    """Stop on a NaN/inf total loss, naming every term and the last good checkpoint.

    Raises:
        TrainingDiverged: the total loss is not finite.
    """
    if math.isfinite(values["total"]):
        return
    terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if k != "total")
    last = f"{ckpt} (epoch {saved + 1})" if saved >= 0 else "none"
    raise TrainingDiverged(f"loss became {values['total']} at epoch {epoch + 1}, step {step} ({terms}); "
                           f"last good checkpoint: {last}; lower --lr or the loss weights")


def _check_stall(log_path: Path, chance: float, name: str) -> collapse.Stall | None:
    """Warn (:class:`~wsbench.collapse.CollapseWarning`) if the log so far shows a stall (see
    :func:`wsbench.collapse.stall`); returns the stall or ``None``."""
    with open(log_path, newline="") as handle:
        found = collapse.stall(collapse.epoch_means(csv.DictReader(handle)), chance)
    if found:
        warnings.warn(f"{name} training: {found.text()} (a collapse: the run will be flagged if its classifier "
                      "ends at chance or its maps flat)", collapse.CollapseWarning, stacklevel=3)
    return found


def _batching(recipe: Recipe, samples: int, clip_len: int, world: int) -> tuple[int, int]:
    """``(samples per step, steps per epoch)`` of a training on ``samples`` frames or clips over ``world`` processes.

    Raises:
        UserError: the samples of a step do not split evenly over the processes.
    """
    per_batch = max(1, recipe.batch_size // clip_len)
    if per_batch % world:
        raise UserError(f"--batch-size {recipe.batch_size} gives {per_batch} samples per step, which do not "
                        f"split evenly over {world} processes")
    return per_batch, samples // per_batch if samples > per_batch else 1


@dataclasses.dataclass(frozen=True)
class Hardware:
    """Where and how a classifier trains.

    Attributes:
        device: the device (under torchrun, this rank's).
        workers: data-loader worker processes (``None``: :func:`~wsbench.device.default_workers`).
        compile_model: ``torch.compile`` the model.
    """

    device: torch.device
    workers: int | None = None
    compile_model: bool = False


@dataclasses.dataclass
class _Loop:
    """One training's moving parts, as :func:`train_classifier` builds them."""

    method: Method
    recipe: Recipe
    model: CamNet
    losses: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    classes: tuple[str, ...]
    steps_per_epoch: int
    total_steps: int
    device: torch.device
    ckpt: Path


def train_classifier(method: Method, recipe: Recipe, data: PreparedData, seed: int, folder: Path,
                     hardware: Hardware, key: dict[str, Any] | None = None) -> CamNet:
    """Train the classifier of ``method`` with ``recipe`` into ``folder`` (resuming a checkpoint there).

    Writes ``checkpoint.pt`` after each epoch, ``log.csv`` (one row per step: every loss term, weights, lr),
    and at the end ``final.pt`` and ``train.json``. Under torchrun (:mod:`wsbench.distributed`) every rank
    trains on its share of each global batch of ``recipe.batch_size`` frames and rank 0 alone writes files.
    Bars and the time estimate follow :mod:`wsbench.progress` (no ``progress`` argument).

    Args:
        method: the method whose loss terms train the classifier.
        recipe: the training recipe.
        data: the prepared data.
        seed: the training seed.
        folder: where the checkpoint, log and weights go.
        hardware: the device, data-loader workers and compilation.
        key: the classifier's cache key, recorded in ``train.json``.

    Returns:
        The trained model.

    Raises:
        TrainingDiverged: on a NaN/inf loss (the last checkpoint stays).
    """
    main, world, device = distributed.is_main(), distributed.world_size(), hardware.device
    workers = default_workers(device) if hardware.workers is None else hardware.workers
    if main:
        folder.mkdir(parents=True, exist_ok=True)
    classes = classes_for(recipe.background_removal)
    seed_all(seed)
    model = _new_model(method, recipe, classes, device)
    dataset = _make_dataset(method, recipe, data)
    clip_len = method.clip_length()
    per_batch, steps_per_epoch = _batching(recipe, len(dataset), clip_len, world)
    total_steps = steps_per_epoch * recipe.epochs

    optimizer, scheduler = _optimizer(model, recipe, total_steps)
    ckpt = folder / "checkpoint.pt"
    start_epoch, elapsed = resume_training(ckpt, model, optimizer, scheduler)
    if world > 1 and device.type == "cuda":  # batch-norm statistics over the global batch, as on one GPU
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    loop = _Loop(method, recipe, model, _loss_module(method, model, device, hardware.compile_model), optimizer,
                 scheduler, classes, steps_per_epoch, total_steps, device, ckpt)

    if main:
        restart_log(log_path := folder / "log.csv", start_epoch)
    # the classification loss of a classifier at chance, for the live collapse check after each epoch
    chance = collapse.chance_loss(Counter(classes[label] for *_, label in dataset.items), classes)
    stalled: collapse.Stall | None = None
    saved = start_epoch - 1  # last epoch with a checkpoint
    step = start_epoch * steps_per_epoch
    estimate = (step, time.perf_counter(), min(5, total_steps - step))  # steps timed before the estimate
    for epoch in range(start_epoch, recipe.epochs):
        started = time.perf_counter()
        if isinstance(dataset, ClipDataset):  # a function of (seed, epoch): a resumed run moves the clips alike
            dataset.set_offset(epoch_offset(seed, epoch, dataset.stride))
        loader = _epoch_loader(dataset, per_batch, seed, epoch, workers, device)
        rows = _epoch(loop, loader, seed, epoch, step, saved, estimate)
        step += len(rows)
        elapsed += time.perf_counter() - started
        saved = epoch
        if not main:
            continue
        append_log(log_path, rows)
        tblog.log_rows(folder, rows)  # the same rows as TensorBoard scalars (optional extra)
        if stalled is None:
            stalled = _check_stall(log_path, chance, method.name)
        save_state(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "epoch": epoch, "elapsed": elapsed, "rng": rng_states()})
    if main:
        save_state(folder / "final.pt", model.state_dict())
        atomic_write_json(folder / "train.json", {"finished": True, "train_seconds": elapsed,
                                                  "epochs": recipe.epochs, "steps": total_steps,
                                                  "samples": len(dataset), "clip_len": clip_len, "key": key,
                                                  "clip_offsets": _clip_offsets(dataset, seed, recipe.epochs),
                                                  "chance_cls": round(chance, 6),
                                                  "stall": stalled.text() if stalled else None})
    distributed.barrier()  # the other ranks read final.pt after this
    model.eval()
    return model


def _epoch(loop: _Loop, loader: DataLoader, seed: int, epoch: int, step: int, saved: int,
           estimate: tuple[int, float, int]) -> list[dict[str, Any]]:
    """Train one epoch; returns its log rows, one per step.

    Args:
        loop: the training.
        loader: this epoch's batches.
        seed, epoch: the training seed and this epoch (its augmentation generator).
        step: the global step the epoch starts at.
        saved: the last epoch with a checkpoint (named when the loss diverges).
        estimate: ``(first step of this process, when it started, steps timed before the estimate)``.
    """
    from tqdm.auto import tqdm

    main = distributed.is_main()
    model, recipe, clip_len = loop.model, loop.recipe, loop.method.clip_length()
    autocast = device_autocast(loop.device)
    aug_gen = torch.Generator().manual_seed((seed * 100_003 + epoch + 7) % 2**64)
    model.train()
    rows = []
    first_step, loop_started, estimate_after = estimate
    bar = tqdm(loader, desc=f"{loop.method.name} epoch {epoch + 1}/{recipe.epochs}", leave=False,
               disable=not show_progress(main), total=loop.steps_per_epoch)
    for raw in bar:
        batch = _to_batch(raw, model, loop.device, len(loop.classes), clip_len, recipe.augment, aug_gen)
        prog = Progress(epoch=epoch, step=step, steps_per_epoch=loop.steps_per_epoch, total_steps=loop.total_steps)
        with autocast:
            terms = loop.losses(batch, prog)
        total = sum(t.value.float() * t.weight for t in terms.values())
        # logged values: the mean over ranks of each rank's share (the terms themselves alone)
        logged = distributed.mean_over_ranks(torch.stack([total.detach()] + [t.value.detach().float()
                                                                             for t in terms.values()]))
        values = dict(zip(["total", *terms], logged.tolist(), strict=True))
        _check_finite(values, epoch, step, loop.ckpt, saved)
        loop.optimizer.zero_grad(set_to_none=True)
        total.backward()
        loop.optimizer.step()
        loop.scheduler.step()
        row = {"epoch": epoch, "step": step, "lr": loop.optimizer.param_groups[0]["lr"]}
        row.update(values)
        row.update({f"weight:{k}": t.weight for k, t in terms.items()})  # the methods' loss weights
        rows.append(row)
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "total"})
        step += 1
        if show_messages() and main and step - first_step == estimate_after:
            _print_estimate(time.perf_counter() - loop_started, estimate_after, loop.total_steps - first_step,
                            recipe, loop.device)
    return rows
