"""Reading frames and masks, with one-line errors that name the file.

GT masks are read only by :func:`read_mask`, and only the evaluator calls it; the training data
path never does (a test checks this).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import cv2
import numpy as np

from ..errors import UserError

__all__ = [
    "FrameSource",
    "ImageFiles",
    "IMAGE_SUFFIXES",
    "is_image_file",
    "natural_key",
    "read_image",
    "read_mask",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``f2`` < ``f10``)."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in _DIGITS.split(name))


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has an image suffix (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Raises:
        UserError: if the file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    data = _read_bytes(path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None, threshold: int = 128) -> np.ndarray:
    """Read a GT mask as a boolean (H, W) array: pixel ≥ ``threshold`` (of 255) is the object.

    Args:
        path: PNG (or JPEG) file; colour masks are reduced to grey.
        size: expected ``(width, height)``; a mask of another size is an error, never resized
            silently.
        threshold: grey level at or above which a pixel counts (128 = half range, which also
            binarises JPEG masks correctly).

    Raises:
        UserError: unreadable file or wrong size.
    """
    path = Path(path)
    data = _read_bytes(path)
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UserError(f"{path}: not a readable mask image (corrupt, truncated or unsupported format)")
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        raise UserError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its frame is {size[0]}x{size[1]}"
        )
    return mask >= threshold


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if not data:
        raise UserError(f"{path}: empty file")
    return data


class FrameSource(Protocol):
    """The frames of one video, in temporal order.

    Implementations: :class:`ImageFiles` (a folder of images); a video-file source lives in
    :mod:`wsbench.data.video`.
    """

    names: Sequence[str]  #: one name per frame (file stem), unique within the video

    def __len__(self) -> int: ...

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8 (H, W, 3)."""
        ...

    def __iter__(self) -> Iterator[np.ndarray]:
        """All frames in order (sequential decoding for video files)."""
        ...


class ImageFiles:
    """Frames stored as one image file each.

    Args:
        paths: image files in temporal order.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.names = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        return read_image(self.paths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield read_image(path)

    def fingerprint(self) -> list:
        """(name, size, mtime) per file: what the caches are keyed on."""
        out = []
        for p in self.paths:
            st = p.stat()
            out.append([p.name, st.st_size, st.st_mtime_ns])
        return out
