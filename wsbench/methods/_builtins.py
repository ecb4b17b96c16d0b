"""Registers the built-in methods (imported lazily by the registry)."""

from . import cam, f2f, gradcam, puzzlecam, tccam  # noqa: F401
