"""The one switch for progress bars: every bar in wsbench asks :func:`show_progress`.

The switch starts as ``$WSBENCH_PROGRESS`` says (``0``: off, anything else or unset: on), read when
a bar asks, so the variable is a user's default and is never written by wsbench. Code changes it
for a block with :func:`progress_bars` (what ``--quiet``/``-q`` of every command does, for that
command only) or from then on with :func:`set_progress` (e.g. in a notebook)::

    with progress_bars(False):
        execute(spec, "runs")          # no bar, however deep (frame and flow caches, inference)

A run's notes (the recipe it chose) and its training time estimate are progress too, but they are not
bars: ``$WSBENCH_PROGRESS`` and :func:`progress_bars` leave them on; only the ``progress=False`` of the
function a caller called (``execute``, ``run_suite``: :func:`no_bars_unless`) turns them off, for its
body, so no library function below it takes a ``progress`` argument (they ask :func:`show_messages`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["PROGRESS_ENV", "no_bars_unless", "progress_bars", "progress_enabled", "set_progress", "show_messages",
           "show_progress"]

PROGRESS_ENV = "WSBENCH_PROGRESS"

#: the switch as code set it; ``None``: ``$WSBENCH_PROGRESS`` decides
_setting: bool | None = None
#: whether notes and time estimates are printed (off inside :func:`no_bars_unless`'s ``False``)
_messages: bool = True


def progress_enabled() -> bool:
    """Whether progress bars are on: as last set by code, else as ``$WSBENCH_PROGRESS`` says."""
    if _setting is not None:
        return _setting
    return os.environ.get(PROGRESS_ENV, "1") != "0"


def set_progress(enabled: bool | None) -> None:
    """Turn every progress bar on or off from now on.

    Args:
        enabled: ``True`` or ``False``; ``None`` hands the decision back to ``$WSBENCH_PROGRESS``.
    """
    global _setting
    _setting = enabled


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Turn every progress bar on or off inside a ``with`` block; the switch is restored after it.

    Args:
        enabled: whether bars are drawn inside the block.
    """
    before = _setting
    set_progress(enabled)
    try:
        yield
    finally:
        set_progress(before)


def no_bars_unless(requested: bool) -> contextlib.AbstractContextManager[None]:
    """What a function's ``progress=False`` does: no bars (``progress_bars(False)``) and no notes or time
    estimates (:func:`show_messages`) in its body; ``True`` changes nothing.

    Args:
        requested: whether the caller wants bars; ``True`` leaves the switch as it is (never on
            against ``$WSBENCH_PROGRESS`` or an enclosing ``progress_bars(False)``).
    """
    return contextlib.nullcontext() if requested else _silenced()


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    global _messages
    before = _messages
    _messages = False
    try:
        with progress_bars(False):
            yield
    finally:
        _messages = before


def show_messages() -> bool:
    """Whether to print a run's notes and its training time estimate: off only inside a function called with
    ``progress=False`` (:func:`no_bars_unless`); unlike bars, ``$WSBENCH_PROGRESS`` does not turn them off."""
    return _messages


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: the switch is on and the caller asks for one.

    Args:
        requested: the caller's own condition (e.g. ``distributed.is_main()``: one bar per launch); it
            can only turn a bar off, never on against the switch.
    """
    return requested and progress_enabled()
