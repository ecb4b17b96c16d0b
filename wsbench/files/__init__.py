"""Safe file handling shared by every command.

- :func:`load_torch`: the one way wsbench reads a ``.pt`` file (``weights_only=True``: tensors and
  plain values only, so a file with a pickled payload is refused, never run); junk of any kind is
  one line naming the file. :func:`state_dict_of` checks that what it read is a state dict.
- :func:`write_image` and :func:`video_writer`: image and video writes whose failure (a read-only
  folder, a full disk, an unknown extension) is an error naming the file instead of a silent no-op.
- :func:`check_output`: an output path is checked before any work is done (never over or inside
  an input, an existing file is replaced only when asked, a folder where a folder is expected).
- :func:`disk_error` and :func:`disk_errors`: an ``OSError`` of a full, read-only or forbidden folder
  as one line naming it.
- :func:`umask` and :func:`chmod_as_new`: temporary files (``mkstemp``, ``mkdtemp``) are private;
  what is renamed into place gets the permissions of a file created normally.
- :func:`reserve_space`: disk space for a memory-mapped cache is reserved before it is filled.
- :func:`atomic_write` (``_bytes``, ``_text``, ``_json``): every record and cache file is written to a
  temporary file in the same folder and renamed into place, so a reader never sees half a file.
- :func:`config_hash` and :func:`file_stat`: stable short hashes of JSON-able mappings and the
  ``[name, size, mtime]`` that content fingerprints are made of.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import UserError
from .outputs import check_output, check_outside, removed_on_failure, reserve_space

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "atomic_write", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "check_output", "check_outside", "chmod_as_new", "config_hash", "disk_error",
           "disk_errors", "file_stat", "load_torch", "removed_on_failure", "reserve_space", "state_dict_of", "umask",
           "video_writer", "write_image"]

#: extensions :func:`write_image` accepts (OpenCV encoders that are always built in)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: extensions of overlay videos and their codecs
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}

_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EISDIR: "a folder is in the way where a file is needed",
    errno.EEXIST: "a file is in the way where a folder is needed",
}


@contextlib.contextmanager
def disk_errors(folder: str | os.PathLike) -> Iterator[None]:
    """Inside the block, an ``OSError`` of a full, read-only or forbidden place becomes one line naming ``folder``."""
    try:
        yield
    except OSError as err:
        one_line = disk_error(err, folder)
        if one_line is None:
            raise
        raise one_line from None


def disk_error(err: OSError, where: str | os.PathLike | None = None) -> UserError | None:
    """The one-line error of a full, read-only or forbidden place, or ``None`` for other errors.

    Args:
        err: the error.
        where: the folder (or file) to name; default: the one the error names (``write()`` errors
            name none).
    """
    reason = _DISK_ERRORS.get(err.errno or -1)
    if reason is None:
        return None
    name = where if where is not None else err.filename
    return UserError(f"{name}: {reason}" if name is not None else reason)


# -- permissions ------------------------------------------------------------------------------
def umask() -> int:
    """The process's umask (read without changing it where the OS allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no way to read it without setting it
    os.umask(old)
    return old


def chmod_as_new(path: str | os.PathLike, folder: bool = False) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a new one gets (0666/0777 minus the umask)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


# -- torch files ------------------------------------------------------------------------------
def load_torch(path: str | os.PathLike, label: str = "") -> Any:
    """Read a ``.pt`` file with ``weights_only=True`` onto the CPU.

    Args:
        path: the file.
        label: prefix of error messages (e.g. ``"--pretrained "``).

    Raises:
        UserError: the file holds Python objects besides tensors and plain values (refused, not
            run), or it is not a PyTorch file at all; the message names the file.
    """
    import torch

    try:
        with warnings.catch_warnings():  # torch's guesses about junk bytes ("pickle protocol 46") are noise
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:  # bytes that are no pickle at all
            raise UserError(f"{label}{path}: not a PyTorch weights file (UnpicklingError)") from None
        raise UserError(f"{label}{path}: refused to load: it holds a Python object ({found[1]}) besides tensors "
                        "and plain values, which could run code; delete the file unless you trust it") from None
    except FileNotFoundError:
        raise UserError(f"{label}{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{label}{path}: is a folder, not a weights file") from None
    except Exception as err:  # junk bytes reach the unpickler's IndexError, KeyError, ... as well as RuntimeError
        raise UserError(f"{label}{path}: not a PyTorch weights file ({type(err).__name__})") from None


def state_dict_of(obj: Any, path: str | os.PathLike, label: str = "", keys: Sequence[str] = ()) -> dict[str, Any]:
    """The state dict (``{name: tensor}``) held by what :func:`load_torch` read.

    Args:
        obj: the loaded object: a state dict, or a checkpoint holding one under one of ``keys``.
        path: the file (named in the error).
        label: prefix of the error message (e.g. ``"--pretrained "``).
        keys: keys of a checkpoint under which the state dict may be, tried in order.

    Returns:
        The state dict.

    Raises:
        UserError: anything else (a list, a number, a dict whose keys are not all strings or whose
            values are not all tensors), naming the file.
    """
    import torch

    if isinstance(obj, dict):
        for key in keys:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        got = "an empty mapping" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    else:
        bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
        if bad is None:
            return obj
        got = f"a mapping with the entry {str(bad)[:40]!r}: {type(obj[bad]).__name__}"
    raise UserError(f"{label}{path}: not a state dict (expected a mapping of parameter names to tensors, got {got})")


# -- images and videos ------------------------------------------------------------------------
def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """``cv2.imwrite`` that fails loudly: a write OpenCV refuses or cannot do is an error naming the file."""
    import cv2

    path = Path(path)
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error:
        ok = False
    if not ok:
        folder = path.parent
        why = ("the folder does not exist" if not folder.is_dir() else
               "the folder is not writable" if not os.access(folder, os.W_OK) else
               "unknown image extension" if path.suffix.lower() not in IMAGE_SUFFIXES else
               "OpenCV could not encode or write it (disk full?)")
        raise UserError(f"{path}: cannot write image ({why})")


def video_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> Any:
    """An open ``cv2.VideoWriter`` for ``path`` (``.mp4``: MP4V, ``.avi``: MJPG).

    Raises:
        UserError: another extension, or OpenCV cannot open the file for writing.
    """
    import cv2

    path = Path(path)
    codec = VIDEO_SUFFIXES.get(path.suffix.lower())
    if codec is None:
        raise UserError(f"{path}: a video must end in {' or '.join(VIDEO_SUFFIXES)}")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise UserError(f"{path}: OpenCV cannot write a {codec} video here (is the folder writable?)")
    return writer


# -- atomic writes ----------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` atomically: ``write(handle)`` fills a temporary file in the same folder,
    which is synced and renamed into place with the mode a new file gets (the umask's).

    Nothing is left behind on failure; a full, read-only or forbidden folder is a
    :class:`~wsbench.errors.UserError` naming it.
    """
    path = Path(path)
    tmp = None
    with disk_errors(path.parent):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            chmod_as_new(tmp)
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- hashing ----------------------------------------------------------------------------------
def config_hash(config: Mapping[str, Any] | Sequence[Any], length: int = 12) -> str:
    """Stable short hash of a JSON-able mapping or list (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def file_stat(path: str | Path) -> list:
    """``[name, size, mtime_ns]`` of a file (following symlinks), or ``[name, None, None]`` if missing.

    What content fingerprints are made of: cheap, and changed by any edit of the file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return [path.name, None, None]
    return [path.name, st.st_size, st.st_mtime_ns]
