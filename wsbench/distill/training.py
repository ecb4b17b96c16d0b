"""The segmenter's training loop: cross-entropy + Dice on pseudo-labels, AdamW, one cycle, a checkpoint per epoch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import save_state
from ..errors import UserError
from .labels import IGNORE
from .recipe import DistillRecipe
from .segmenter import SegmenterNet

__all__ = ["one_cycle", "save_state", "train_segmenter"]


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


def train_segmenter(net: SegmenterNet, frames: np.ndarray, labels: np.ndarray, recipe: DistillRecipe, seed: int,
                    device: torch.device, checkpoint: Path, resume: bool) -> float:
    """Train ``net`` in place on the pseudo-labels, writing ``checkpoint`` after every epoch.

    Args:
        net: the segmenter, on ``device``.
        frames: (N, h, w, 3) uint8 original frames at the segmenter's resolution.
        labels: (N, h, w) uint8 pseudo-labels (:data:`~wsbench.distill.IGNORE`: not trained on).
        recipe: epochs, batch size, learning rate, weight decay, Dice weight.
        seed: the seed of the initial state, the order and the flips of each epoch.
        device: where to train.
        checkpoint: the checkpoint file.
        resume: continue from ``checkpoint`` if it exists.

    Returns:
        The seconds spent training in this process.

    Raises:
        UserError: ``checkpoint`` is not a checkpoint of this segmenter.
    """
    import segmentation_models_pytorch as smp
    from tqdm.auto import tqdm

    from ..files import load_torch
    from ..progress import show_progress

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
        save_state(checkpoint, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch + 1})
    return time.perf_counter() - started
