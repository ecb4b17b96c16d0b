"""The one training loop every method uses.

It owns: data loading (single frames or clips with flows), augmentation on the batch, the α/β
schedule, the optimiser and learning-rate schedule, AMP (bf16) and a channels_last model on CUDA and under DDP,
a checkpoint after every epoch, resume, a per-step CSV log of every loss term, and stopping with
a clear message on a non-finite loss. It has no method-specific branch: the method named by
``Method.classifier()`` supplies the loss terms.

Determinism: the model is initialised from the seed; each epoch's shuffling and augmentation use
generators seeded from (seed, epoch), and the checkpoint holds the global RNG states (Python,
NumPy, torch), so a resumed run continues exactly as an uninterrupted one (on the same device).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed, tblog
from .data.cache import PreparedData
from .data.torch_data import ClipDataset, FrameDataset, classes_for, collate
from .device import autocast as device_autocast
from .device import default_workers, to_device
from .errors import UserError
from .progress import show_progress
from .methods import Batch, LossTerm, Method, Progress
from .model import CamNet
from .files import disk_errors, load_torch
from .recipes import Recipe
from .runs import atomic_write_bytes, atomic_write_json, config_hash
from .schema import AnyValue, Number, Record, load_json

__all__ = ["Recipe", "TrainingDiverged", "build_model", "classifier_dir", "load_weights", "loss_weight",
           "obtain_classifier", "train_classifier"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def loss_weight(maximum: float, step: int, steps_per_epoch: int, total_steps: int, ramp: str = "ramp") -> float:
    """Weight of a reconstruction loss at ``step`` (paper §5.2).

    ``ramp``: 0 during the first epoch, then rising linearly to ``maximum`` at the midpoint of
    training (at once after the first epoch if that is already past the midpoint).
    ``constant``: ``maximum`` throughout.
    """
    if ramp == "constant":
        return maximum
    if step < steps_per_epoch:
        return 0.0
    span = total_steps / 2 - steps_per_epoch
    if span <= 0:
        return maximum
    return maximum * min(1.0, (step - steps_per_epoch) / span)


def build_model(recipe: Recipe, classes: tuple[str, ...], head: str = "classmap") -> CamNet:
    """The classifier a recipe trains (random init unless ``recipe.pretrained``).

    Args:
        recipe: the training recipe.
        classes: class names in head order.
        head: the trainer method's :attr:`~wsbench.methods.Method.head`.
    """
    return CamNet(recipe.backbone, classes, recipe.output_stride, recipe.pool, recipe.pretrained, head=head)


# -- the classifier cache ---------------------------------------------------------------------
def classifier_key(method: Method, recipe: Recipe, data: PreparedData, seed: int) -> dict[str, Any]:
    """What determines a trained classifier; its hash names the cache folder.

    The data enter as the frame cache's name (the data set's content fingerprint) and, for clip
    training on ``.flo`` files, the files' content fingerprint.
    """
    from .flow import flow_fingerprint

    from .methods import create_trainer

    name, options = method.classifier()
    fields = dataclasses.asdict(recipe)
    key = {"method": name, "options": options, "recipe": fields, "data": data.path.parent.name,
           "image_size": list(recipe.image_size), "seed": seed}
    if create_trainer(method).clip_length() == 1:  # the trainer's: tccam --no-temporal trains as puzzlecam
        fields.pop("flow")  # single-frame training never reads flow
        fields.pop("flow_root")
    else:
        content = flow_fingerprint(recipe.flow, recipe.flow_options(), data.index)
        if content is not None:  # .flo files: their content, not only where they are
            key["flow_data"] = content
    return key


def classifier_dir(runs_dir: Path, key: dict[str, Any]) -> Path:
    """``RUNS_DIR/classifiers/<hash>``."""
    return Path(runs_dir) / "classifiers" / config_hash(key)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock so two runs never train the same classifier at once (the second waits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def obtain_classifier(method: Method, recipe: Recipe, data: PreparedData, seed: int, runs_dir: Path,
                      device: torch.device, resume: bool = False, workers: int | None = None,
                      compile_model: bool = False, progress: bool = True) -> tuple[CamNet, dict[str, Any]]:
    """The trained classifier of ``method``: from the cache if another run trained it, else trained now.

    Args:
        method: the method whose maps are wanted (its ``classifier()`` names the recipe).
        recipe: training recipe.
        data: prepared data.
        seed: training seed.
        runs_dir: runs directory holding ``classifiers/``.
        device: where to train.
        resume: continue an interrupted training from its last checkpoint.
        workers: data-loader worker processes (``None``: 0 on the CPU, min(8, cores) on CUDA).
        compile_model: wrap the model in ``torch.compile``.
        progress: show a progress bar.

    Returns:
        ``(model in eval mode, info)`` where info has ``key``, ``path``, ``train_seconds``,
        ``trained_now``.

    Raises:
        UserError: an interrupted training exists and ``resume`` is false.
    """
    from . import methods

    key = classifier_key(method, recipe, data, seed)
    folder = classifier_dir(runs_dir, key)
    trainer = methods.create_trainer(method)
    # under torchrun rank 0 holds the lock and decides; the other ranks follow its decision
    lock = _locked(folder.parent / f"{folder.name}.lock") if distributed.is_main() else contextlib.nullcontext()
    with lock:
        trained_now = False
        todo = "done"
        if distributed.is_main() and not (folder / "final.pt").exists():
            todo = "train"
            if (folder / "checkpoint.pt").exists() and not resume:
                state = load_torch(folder / "checkpoint.pt")
                todo = (f"{folder}: an interrupted training of this classifier stopped after epoch "
                        f"{state['epoch'] + 1}/{recipe.epochs}; pass --resume to continue it")
        todo = distributed.broadcast(todo)
        if todo not in ("train", "done"):
            raise UserError(todo)
        if todo == "train":
            train_classifier(trainer, recipe, data, seed, folder, device, workers=workers,
                             compile_model=compile_model, progress=progress, key=key)
            trained_now = True
        info = load_json(folder / "train.json", Record({"train_seconds": Number(finite=True)},
                                                        required=("train_seconds",), extra=AnyValue()),
                         "classifier training record", hint=f"delete {folder} to train the classifier again")
    model = build_model(recipe, classes_for(recipe.background_removal), trainer.head)
    load_weights(model, folder / "final.pt")
    model.to(device).eval()
    # relative to the runs directory, which can then be copied or moved
    return model, {"key": config_hash(key), "path": folder.relative_to(Path(runs_dir)).as_posix(),
                   "train_seconds": info["train_seconds"], "trained_now": trained_now, "method": key["method"], "options": key["options"]}


def load_weights(model: CamNet, path: Path) -> None:
    """Load a stored classifier's ``final.pt`` into ``model``.

    Raises:
        UserError: a missing, unreadable or corrupt file, or weights of another architecture,
            naming the file and how to get it again.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: classifier weights missing; delete {path.parent} to train it again")
    state = load_torch(path)  # weights only: a file with Python objects is refused, never run
    try:
        model.load_state_dict(state)
    except Exception as err:  # not a state dict, or weights of another architecture
        raise UserError(f"{path}: unreadable classifier weights ({type(err).__name__}); delete {path.parent} to "
                        "train it again") from None


# -- training ---------------------------------------------------------------------------------
def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_states() -> dict[str, Any]:
    """Global RNG states (data-loader base seeds, dropout, ...), saved with each checkpoint.

    Tensors and plain values only, so the checkpoint loads with ``weights_only=True``.
    """
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    py, nps = states["python"], states["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np.random.set_state((nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _truncate_log(path: Path, epochs: int) -> None:
    """Keep only the rows of the first ``epochs`` epochs (a resumed run rewrites the rest)."""
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["epoch"]) < epochs]
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


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


def _save(path: Path, obj: Any) -> None:
    """``torch.save`` atomically; serialised in memory first, so a failed write is an ``OSError``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


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


def train_classifier(method: Method, recipe: Recipe, data: PreparedData, seed: int, folder: Path,
                     device: torch.device, workers: int | None = None, compile_model: bool = False,
                     progress: bool = True, key: dict[str, Any] | None = None) -> CamNet:
    """Train the classifier of ``method`` with ``recipe`` into ``folder`` (resuming a checkpoint there).

    Writes ``checkpoint.pt`` after each epoch, ``log.csv`` (one row per step: every loss term,
    weights, lr), and at the end ``final.pt`` and ``train.json``. ``workers=None`` takes
    :func:`~wsbench.device.default_workers`. Under torchrun (see :mod:`wsbench.distributed`) every
    rank trains on its share of each global batch of ``recipe.batch_size`` frames and rank 0 alone
    writes files.

    Returns:
        The trained model.

    Raises:
        TrainingDiverged: on a NaN/inf loss (the last checkpoint stays).
    """
    from tqdm.auto import tqdm

    main, world = distributed.is_main(), distributed.world_size()
    workers = default_workers(device) if workers is None else workers
    if main:
        folder.mkdir(parents=True, exist_ok=True)
    classes = classes_for(recipe.background_removal)
    _seed_all(seed)
    model = build_model(recipe, classes, method.head).to(device)
    if device.type == "cuda" or world > 1:
        # the batches are channels_last on every device, so their weight gradients are too; under DDP the
        # parameters must match them, or every step copies across layouts ("Grad strides do not match
        # bucket view strides"). A single CPU process keeps its contiguous weights (unchanged numerics).
        model = model.to(memory_format=torch.channels_last)
    dataset = _make_dataset(method, recipe, data)
    clip_len = method.clip_length()
    per_batch = max(1, recipe.batch_size // clip_len)
    if per_batch % world:
        raise UserError(f"--batch-size {recipe.batch_size} gives {per_batch} samples per step, which do not "
                        f"split evenly over {world} processes")
    steps_per_epoch = len(dataset) // per_batch if len(dataset) > per_batch else 1
    total_steps = steps_per_epoch * recipe.epochs

    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD([{"params": body}, {"params": head, "lr": recipe.lr * 10}], lr=recipe.lr,
                                    momentum=0.9, weight_decay=recipe.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(recipe.schedule, total_steps))

    start_epoch, elapsed = 0, 0.0
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        state = load_torch(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, elapsed = state["epoch"] + 1, state["elapsed"]
        if "rng" in state:
            _set_rng_states(state["rng"])
    if world > 1 and device.type == "cuda":  # batch-norm statistics over the global batch, as on one GPU
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    losses: nn.Module = _Losses(method, torch.compile(model) if compile_model else model)
    if world > 1:
        losses = nn.parallel.DistributedDataParallel(losses, device_ids=[device] if device.type == "cuda" else None)
    autocast = device_autocast(device)

    log_path = folder / "log.csv"
    if main and log_path.exists():
        if start_epoch == 0:
            log_path.unlink()
        else:
            with disk_errors(folder):
                _truncate_log(log_path, start_epoch)
    saved = start_epoch - 1  # last epoch with a checkpoint
    step = start_epoch * steps_per_epoch
    first_step, loop_started = step, time.perf_counter()
    estimate_after = min(5, total_steps - step)  # steps timed before the estimate is printed
    for epoch in range(start_epoch, recipe.epochs):
        started = time.perf_counter()
        # wrapped to 64 bits, so every --seed works; identical for seeds below 2**64 / 100_003
        gen = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)
        sampler = distributed.ShardSampler(len(dataset), per_batch // world, gen, distributed.rank(), world)
        loader = DataLoader(dataset, batch_size=per_batch // world, sampler=sampler, num_workers=workers,
                            collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=False)
        aug_gen = torch.Generator().manual_seed((seed * 100_003 + epoch + 7) % 2**64)
        model.train()
        rows = []
        bar = tqdm(loader, desc=f"{method.name} epoch {epoch + 1}/{recipe.epochs}", leave=False,
                   disable=not show_progress(progress and main), total=steps_per_epoch)
        for raw in bar:
            batch = _to_batch(raw, model, device, len(classes), clip_len, recipe.augment, aug_gen)
            prog = Progress(epoch=epoch, step=step, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                            alpha=loss_weight(recipe.alpha_max, step, steps_per_epoch, total_steps, recipe.weight_ramp),
                            beta=loss_weight(recipe.beta_max, step, steps_per_epoch, total_steps, recipe.weight_ramp))
            with autocast:
                terms = losses(batch, prog)
            total = sum(t.value.float() * t.weight for t in terms.values())
            # logged values: the mean over ranks of each rank's share (the terms themselves alone)
            logged = distributed.mean_over_ranks(torch.stack([total.detach()] + [t.value.detach().float()
                                                                                 for t in terms.values()]))
            values = dict(zip(["total", *terms], logged.tolist()))
            if not math.isfinite(values["total"]):
                values = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if k != "total")
                last = f"{ckpt} (epoch {saved + 1})" if saved >= 0 else "none"
                raise TrainingDiverged(f"loss became {float(logged[0])} at epoch {epoch + 1}, step {step} ({values}); "
                                       f"last good checkpoint: {last}; lower --lr or the loss weights")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scheduler.step()
            row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], "alpha": prog.alpha,
                   "beta": prog.beta}
            row.update(values)
            rows.append(row)
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "total"})
            step += 1
            if progress and main and step - first_step == estimate_after:
                _print_estimate(time.perf_counter() - loop_started, estimate_after, total_steps - first_step,
                                recipe, device)
        elapsed += time.perf_counter() - started
        saved = epoch
        if not main:
            continue
        if rows:
            new = not log_path.exists()
            with disk_errors(folder), open(log_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                if new:
                    writer.writeheader()
                writer.writerows(rows)
            tblog.log_rows(folder, rows)  # the same rows as TensorBoard scalars (optional extra)
        _save(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "elapsed": elapsed, "rng": _rng_states()})
    if main:
        _save(folder / "final.pt", model.state_dict())
        atomic_write_json(folder / "train.json", {"finished": True, "train_seconds": elapsed,
                                                  "epochs": recipe.epochs, "steps": total_steps,
                                                  "samples": len(dataset), "clip_len": clip_len, "key": key})
    distributed.barrier()  # the other ranks read final.pt after this
    model.eval()
    return model
