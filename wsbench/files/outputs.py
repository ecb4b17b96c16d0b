"""Outputs checked before any work (:func:`check_output`, :func:`check_outside`), undone on failure
(:func:`removed_on_failure`), and disk space reserved before a memory-mapped cache is filled (:func:`reserve_space`).

Import these from :mod:`wsbench.files`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["check_output", "check_outside", "removed_on_failure", "reserve_space"]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outside(path: str | os.PathLike, option: str, data_roots: Iterable[Any]) -> None:
    """Refuse an output or runs/cache folder that is a data root a command reads, or inside one.

    Whatever a command writes there (figures, run folders, caches) the next command would read
    as frames, masks or videos of the data set.

    Args:
        path: the folder or file written.
        option: how the user named it (``--runs-dir``), for the message.
        data_roots: the data folders the command reads (``None`` entries are ignored).

    Raises:
        UserError: one line naming the path and the data root.
    """
    resolved = Path(path).expanduser().resolve()
    for root in data_roots:
        if root is not None and _inside(resolved, Path(root).expanduser().resolve()):
            raise UserError(f"{option} {path}: is inside the data root {root}, which this command reads; "
                            "choose a folder outside it")


@contextlib.contextmanager
def removed_on_failure(folder: str | os.PathLike, files: Iterable[Any] = ()) -> Iterator[None]:
    """Undo a failed command's writes into an output folder that :func:`check_output` found new or empty.

    If the block raises (an error, Ctrl-C), the folder is removed when it did not exist before, or
    emptied when it did (it was empty), and each of ``files`` (``None`` entries ignored) that did
    not exist before is removed: the same command can run again, and nothing half-written looks
    finished.

    Args:
        folder: the output folder, new or empty.
        files: other outputs the block may create (an overlay video).
    """
    folder = Path(folder)
    existed = folder.exists()
    new_files = [Path(f) for f in files if f is not None and not Path(f).exists()]
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        child.unlink()
        for path in new_files:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def check_output(path: str | os.PathLike, option: str, kind: str = "file", inputs: Iterable[Any] = (),
                 overwrite: bool = False, suffixes: Iterable[str] = (), empty: bool = False) -> Path:
    """Check an output path before any work is done; nothing is created.

    Args:
        path: the output.
        option: how the user named it (``--out``), for messages.
        kind: ``"file"`` or ``"dir"``.
        inputs: files or folders the command reads (``None`` entries are ignored); the output may
            be neither one of them nor inside one, nor (for a folder output) contain one.
        overwrite: an existing output file may be replaced (``--overwrite``).
        suffixes: allowed extensions of a file output (any when empty).
        empty: a folder output must be new or empty.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UserError: one line naming the path and what is wrong.
    """
    path = Path(path).expanduser()
    resolved = path.resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).expanduser().resolve()
        if resolved == source:
            raise UserError(f"{option} {path}: is the input {item}; choose another output")
        if _inside(resolved, source) and source.is_dir():
            raise UserError(f"{option} {path}: is inside the input folder {item}; choose an output outside it")
        if kind == "dir" and _inside(source, resolved):
            raise UserError(f"{option} {path}: contains the input {item}; choose another output")
    for parent in resolved.parents:  # a file where a folder of the path must be
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option} {path}: {parent} is a file, not a folder")
            break
    if kind == "dir":
        if path.exists() and not path.is_dir():
            raise UserError(f"{option} {path}: is a file, not a folder")
        if empty and path.is_dir() and any(path.iterdir()):
            raise UserError(f"{option} {path}: exists and is not an empty folder; choose another {option}")
        return path
    allowed = tuple(s.lower() for s in suffixes)
    if allowed and path.suffix.lower() not in allowed:
        raise UserError(f"{option} {path}: must end in {', '.join(allowed)}")
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    if path.exists() and not overwrite:
        raise UserError(f"{option} {path}: exists; pass --overwrite to replace it")
    return path


def reserve_space(files: list[Path], what: str) -> None:
    """Allocate the disk blocks of freshly created (sparse) memory-mapped files before they are filled.

    Writing into a memory map on a full disk kills the process with SIGBUS; reserving first turns
    that into an error before any work, naming the folder and the space needed.

    Args:
        files: the files, created at their full size (``np.lib.format.open_memmap``), in one folder.
        what: what they hold, for the message (``"the frame cache"``).

    Raises:
        UserError: the folder's disk has less free space than the files need.
    """
    folder = files[0].parent
    needed = sum(p.stat().st_size for p in files)

    def refuse(free: int | None) -> UserError:
        have = f", {_size(free)} free" if free is not None else ""
        return UserError(f"{folder}: not enough free space for {what}: needs {_size(needed)}{have}; "
                         "free some space or choose another --cache-dir")

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and needed > free:
        raise refuse(free)
    for path in files:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, path.stat().st_size)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise refuse(free) from None
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # else: cannot reserve here
                raise
        finally:
            os.close(fd)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
