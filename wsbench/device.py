"""Device handling in one place: ``--device auto|cpu|cuda[:N]``."""

from __future__ import annotations

import re

import torch

from .errors import UserError

__all__ = ["resolve_device"]

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
