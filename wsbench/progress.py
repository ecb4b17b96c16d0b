"""The one switch for progress bars: ``--quiet``/``-q`` and ``$WSBENCH_PROGRESS=0`` turn every bar off."""

from __future__ import annotations

import os

__all__ = ["PROGRESS_ENV", "show_progress"]

PROGRESS_ENV = "WSBENCH_PROGRESS"


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: the caller asks for one and ``$WSBENCH_PROGRESS`` is not ``0``.

    Every ``-q`` option sets ``$WSBENCH_PROGRESS=0``, so bars drawn deep inside the library
    (frame and flow caches, map inference) obey it as well as the command's own.
    """
    return requested and os.environ.get(PROGRESS_ENV, "1") != "0"
