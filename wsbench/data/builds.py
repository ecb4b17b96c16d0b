"""Temporary cache builds and their owners: who built what, clean-up after a kill, SIGTERM as an exit.

A temporary name carries its owner (``.<name>.<host>-<pid>.<random>``, :func:`build_owner`): Ctrl-C and
SIGTERM (what ``timeout`` and ``scancel`` send; :func:`terminate_as_exit`) during a build remove it,
and what a killed process left (kill -9, a lost machine) is removed by the next
:func:`~wsbench.data.cache.prepare` on that host once its owner is gone (:func:`remove_stale_builds`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["build_owner", "remove_stale_builds", "terminate_as_exit"]


def build_owner() -> str:
    """``<host>-<pid>``: who owns a temporary build (dots and slashes of the host name dropped)."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-_") or "host"
    return f"{host}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_builds(root: str | os.PathLike) -> list[Path]:
    """Remove the temporary builds under a cache root whose owner process on this host is gone.

    A build killed without a chance to clean up (kill -9, a lost machine, OOM) leaves a hidden
    folder or file of preallocated arrays; its name says which host and process owned it (see the
    module docstring). Builds of live processes and of other hosts (a shared cache folder) are
    left alone.

    Args:
        root: the cache root (:func:`resolve_cache_dir`).

    Returns:
        What was removed.
    """
    root, host = Path(root), build_owner().rsplit("-", 1)[0]
    removed = []
    for entry in (*root.glob("*/.*"), *root.glob("*/*/.*")):
        parts = entry.name.split(".")
        owner = next((p for p in parts if p.startswith(f"{host}-") and p[len(host) + 1:].isdigit()), None)
        if owner is None or _alive(int(owner[len(host) + 1:])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """While a cache is built, SIGTERM raises ``SystemExit(143)`` so the build's clean-up runs.

    Only in the main thread and only where nothing else handles SIGTERM (a job system's handler
    is kept); the previous handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
