"""Device handling in one place: ``--device auto|cpu|cuda[:N]`` and what differs on a GPU.

On CUDA, training and map inference run under bf16 autocast with channels_last tensors, batches are
copied from pinned memory without blocking, and the data loader uses worker processes by default.
On the CPU none of that applies (fp32, no workers), so CPU results do not depend on this module.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch

from .errors import UserError

__all__ = ["autocast", "default_workers", "resolve_device", "to_device"]

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a ``--device`` value into a :class:`torch.device`.

    Args:
        spec: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The device to train and evaluate on.

    Raises:
        UserError: for a malformed value or a CUDA device that is not available.
    """
    spec = spec.strip().lower()
    if not _PATTERN.match(spec):
        raise UserError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    return torch.device("cpu")


def default_workers(device: torch.device) -> int:
    """Data-loader worker processes when ``--workers`` is not given: none on the CPU (they would
    compete with the model for the same cores), ``min(8, cores)`` on CUDA."""
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on other devices (CPU stays fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU batch to ``device``: through pinned memory without blocking on CUDA."""
    if device.type == "cuda":
        if not images.is_pinned():
            images = images.pin_memory()
        return images.to(device, non_blocking=True)
    return images.to(device)
