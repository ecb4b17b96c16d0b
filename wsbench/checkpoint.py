"""A training's state on disk and in the random generators: what resuming an interrupted training needs.

Both trainers (the classifier's, :mod:`wsbench.train`, and the distilled segmenter's,
:mod:`wsbench.distill.training`) write checkpoints with :func:`save_state`; the classifier's trainer
also saves and restores the global random generators with each checkpoint (:func:`rng_states`), resumes
from one (:func:`resume_training`) and keeps its ``log.csv`` in step with the epochs it redoes.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .files import atomic_write_bytes, disk_errors, load_torch

__all__ = ["append_log", "restart_log", "resume_training", "rng_states", "save_state", "seed_all", "set_rng_states"]


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """Global RNG states (data-loader base seeds, dropout, ...), saved with each checkpoint.

    Tensors and plain values only, so the checkpoint loads with ``weights_only=True``.
    """
    version, mt, gauss = random.getstate()
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)  # numpy's global generator is an MT19937: the legacy tuple
    kind, keys, pos, has_gauss, cached = state
    states = {"python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the generators :func:`rng_states` saved."""
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


def save_state(path: Path, obj: Any) -> None:
    """``torch.save`` atomically; serialised in memory first, so a failed write is an ``OSError``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def resume_training(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LambdaLR) -> tuple[int, float]:
    """Restore an interrupted training from ``ckpt`` if there is one: ``(first epoch to train, seconds so far)``."""
    if not ckpt.exists():
        return 0, 0.0
    state = load_torch(ckpt)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "rng" in state:
            set_rng_states(state["rng"])
        return int(state["epoch"]) + 1, float(state["elapsed"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise UserError(f"{ckpt}: not a checkpoint of this training ({type(err).__name__}); delete it to train "
                        "from the start") from None


def restart_log(path: Path, start_epoch: int) -> None:
    """A fresh training starts a new ``log.csv``; a resumed one drops the rows of the epochs it redoes."""
    if not path.exists():
        return
    if start_epoch == 0:
        path.unlink()
    else:
        with disk_errors(path.parent):
            _truncate_log(path, start_epoch)


def append_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """Add an epoch's rows to ``log.csv`` (with the header when the file is new)."""
    if not rows:
        return
    new = not path.exists()
    with disk_errors(path.parent), open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
