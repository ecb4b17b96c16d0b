"""Reading frames and masks, with one-line errors that name the file.

GT masks are read only by :func:`read_mask`; in a run only the evaluator calls it, and the training
data path never does (a test checks this). ``wsbench data show``'s contact sheet also draws them.

Policy for unreadable files: a frame or mask that is missing, empty, truncated, corrupt or not an
image stops the run with a :class:`~wsbench.errors.UserError` naming the file; it is never
skipped, because dropping a frame would silently change a video's temporal neighbours and flows.
PNG files are checked chunk by chunk (length and CRC) before decoding, so a truncated or corrupt
PNG is reported by wsbench alone. A JPEG that libjpeg can still decode despite damaged data is
used as decoded (libjpeg prints its own "Corrupt JPEG data" warning).

Size limit: a small file can declare a huge image (a 60 kB PNG of 16000×16000 pixels decodes to
768 MB, several GB on the way). The size a PNG, JPEG, BMP, WebP or TIFF file declares is read from
its header and an image above :func:`max_image_pixels` (64 megapixels unless
``$WSBENCH_MAX_IMAGE_PIXELS`` says otherwise) is refused before it is decoded; video frames are
held to the same limit. A file in any other format OpenCV would decode by its content (GIF, PNM,
EXR, JPEG 2000, ... whatever its name) is refused as unsupported, so no format escapes the limit.

Labels: a palette (indexed) PNG mask is read by palette index, whatever the colours (index 0 is
the background), and a grayscale PNG of 1, 2 or 4 bits by its stored values, so a 0/1 label image
is a label image in every PNG mode.

Orientation: an EXIF orientation tag is ignored for frames and masks alike, so both are used on
the pixel grid as stored (as video decoders deliver frames) and a mask always lines up with its
frame.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import UserError
from ..files import file_stat
from .headers import PNG_SIGNATURE, declared_size, palette_as_indices, png_mode, png_problem

__all__ = [
    "FrameSource",
    "ImageFiles",
    "IMAGE_SUFFIXES",
    "check_pixels",
    "declared_size",
    "check_frame_names",
    "image_files",
    "is_image_file",
    "max_image_pixels",
    "named_images",
    "natural_key",
    "read_image",
    "read_mask",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: images above this many pixels are refused before decoding (see :func:`max_image_pixels`)
MAX_IMAGE_PIXELS = 64_000_000
PIXELS_ENV = "WSBENCH_MAX_IMAGE_PIXELS"
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``f2`` < ``f10``).

    Leading zeros and letter case do not count: ``f_01``, ``f_1`` and ``f_001`` tie, and a stable
    sort keeps them in the order given (the file system's); frames of one video must not tie
    (:class:`ImageFiles` refuses them).
    """
    return tuple(int(p) if p.isdigit() else p.lower() for p in _DIGITS.split(name))


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has an image suffix (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def named_images(folder: Path, pattern: re.Pattern[str], expected: str) -> Iterator[tuple[re.Match[str], Path]]:
    """Every image file of ``folder`` (in listing order, other files skipped), with its stem matched by ``pattern``.

    Args:
        folder: the folder.
        pattern: what a frame's name (without the suffix) must match.
        expected: the end of the error line for a name that does not match.

    Raises:
        UserError: ``<file>: <expected>`` for the first image whose name does not match.
    """
    for path in folder.iterdir():
        if not (path.is_file() and is_image_file(path)):
            continue
        match = pattern.match(path.stem)
        if match is None:
            raise UserError(f"{path}: {expected}")
        yield match, path


def image_files(folder: Path) -> list[Path]:
    """The frames of a folder in temporal order (natural sort of their names).

    Files without an image suffix are skipped with one warning (hidden files silently).

    Raises:
        UserError: two frames share a name (``f1.png`` and ``f1.jpg``).
    """
    files: list[Path] = []
    skipped: list[Path] = []
    for p in folder.iterdir():
        if p.is_file():
            (files if is_image_file(p) else skipped).append(p)
    visible = [p for p in skipped if not p.name.startswith(".")]
    if visible:
        warnings.warn(f"{folder}: skipped {len(visible)} non-image file(s), e.g. {visible[0].name}", stacklevel=3)
    check_frame_names(files)
    return sorted(files, key=lambda p: natural_key(p.name))


def check_frame_names(paths: Sequence[Path]) -> None:
    """Refuse frames of one video whose order or identity is ambiguous.

    Raises:
        UserError: two frames share a stem (``f1.png`` and ``f1.jpg``), or two stems differ only in
            leading zeros or case (``f_01`` and ``f_1``), so that no order between them is right.
    """
    stems: dict[str, Path] = {}
    keys: dict[tuple, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise UserError(f"{p}: two frames share the name {p.stem!r} ({stems[p.stem].name})")
        stems[p.stem] = p
        key = natural_key(p.stem)
        if key in keys:
            raise UserError(f"{p.parent}: frame names {keys[key].name!r} and {p.name!r} differ only in leading "
                            "zeros or case, so their order is ambiguous; rename one of them")
        keys[key] = p


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Grayscale images are replicated to three channels, an alpha channel is dropped and 16-bit
    images are scaled to 8 bits. An EXIF orientation tag is ignored (as for masks).

    Args:
        path: the image file.

    Returns:
        The image as an RGB uint8 array.

    Raises:
        UserError: if the file is missing, empty, truncated, corrupt or not an image.
    """
    path = Path(path)
    image = _decode(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION, "image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None, threshold: int = 128) -> np.ndarray:
    """Read a GT mask as a boolean (H, W) array.

    A pixel is the object when any colour channel reaches ``threshold`` (of 255; 16-bit masks are
    compared at the same fraction of 65535), so white, grey and coloured masks all work and JPEG
    noise is ignored. A mask whose only values are 0 and 1 is a label image: 1 is the object. A
    palette (indexed) PNG is read by index: every index but 0 is the object, whatever its colour.
    An EXIF orientation tag is ignored (as for frames).

    Args:
        path: PNG (or JPEG, TIFF, ...) file; an alpha channel is ignored.
        size: expected ``(width, height)``; a mask of another size is an error, never resized
            silently.
        threshold: grey level at or above which a pixel counts (128 = half range, which also
            binarises JPEG masks correctly).

    Returns:
        The mask, ``True`` on the object.

    Raises:
        UserError: unreadable file or wrong size.
    """
    path = Path(path)
    data = _read_bytes(path)
    depth, colour = png_mode(data)
    if colour == 3:  # indexed: decode the palette indices, not their colours
        raw = _decode(path, cv2.IMREAD_GRAYSCALE, "mask image", palette_as_indices(data))
        if size is not None and (raw.shape[1], raw.shape[0]) != tuple(size):
            raise UserError(f"{path}: mask is {raw.shape[1]}x{raw.shape[0]} but its frame is {size[0]}x{size[1]}")
        return raw > 0
    raw = _decode(path, cv2.IMREAD_UNCHANGED, "mask image", data)
    if colour == 0 and depth < 8 and raw.dtype == np.uint8 and raw.max() == 255 // (2 ** depth - 1):
        return raw > 0  # a 0/1 label image of 1, 2 or 4 bits, which libpng scaled to 0..255
    if raw.ndim == 3:
        raw = raw[..., :3].max(axis=2) if raw.shape[2] >= 3 else raw[..., 0]
    if size is not None and (raw.shape[1], raw.shape[0]) != tuple(size):
        raise UserError(
            f"{path}: mask is {raw.shape[1]}x{raw.shape[0]} but its frame is {size[0]}x{size[1]}"
        )
    level: float
    if raw.dtype == np.uint8:
        level = threshold
    elif raw.dtype == np.uint16:
        level = threshold * 257
    else:  # float TIFF masks: values in [0, 1]
        level = threshold / 255
    if raw.dtype in (np.uint8, np.uint16) and raw.max() == 1:  # a 0/1 label image, 8- or 16-bit
        return raw > 0
    return raw >= level


def max_image_pixels() -> int:
    """The largest image (width × height) wsbench decodes: ``$WSBENCH_MAX_IMAGE_PIXELS`` or 64 million.

    Raises:
        UserError: the variable is not a positive integer.
    """
    raw = os.environ.get(PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return MAX_IMAGE_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"${PIXELS_ENV} must be a positive whole number of pixels, not {raw!r}")
    return int(raw)


def check_pixels(source: str | os.PathLike, width: int, height: int) -> None:
    """Refuse an image (or video frame) of ``width`` × ``height`` above :func:`max_image_pixels`.

    Raises:
        UserError: one line naming ``source``, its size and the limit.
    """
    limit = max_image_pixels()
    if width * height > limit:
        raise UserError(f"{source}: declares {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), above "
                        f"the limit of {limit / 1e6:g} megapixels; set ${PIXELS_ENV} to raise it")


def _decode(path: Path, flags: int, what: str, data: bytes | None = None) -> np.ndarray:
    data = _read_bytes(path) if data is None else data
    problem = png_problem(data) if data.startswith(PNG_SIGNATURE) else None
    if problem:
        raise UserError(f"{path}: not a readable {what} ({problem})")
    size = declared_size(data)
    if size is None:  # a format whose size we cannot check, or a damaged header
        raise UserError(f"{path}: not a readable {what} ({_UNSUPPORTED})")
    check_pixels(path, *size)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise UserError(f"{path}: not a readable {what} (corrupt, truncated or unsupported format)")
    return image


_UNSUPPORTED = "unsupported format or damaged header; wsbench reads PNG, JPEG, BMP, WebP and TIFF"


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

    @property
    def names(self) -> Sequence[str]:
        """One name per frame (file stem), unique within the video."""
        ...

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

    Raises:
        UserError: ambiguous frame names (see :func:`check_frame_names`).
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        check_frame_names(self.paths)
        self.names = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        return read_image(self.paths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield read_image(path)

    def frame_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of frame ``index`` from its file's header, without decoding it.

        Raises:
            UserError: the file is unreadable or its format unsupported.
        """
        path = self.paths[index]
        size = declared_size(_read_bytes(path))
        if size is None:
            raise UserError(f"{path}: not a readable image ({_UNSUPPORTED})")
        return size

    def fingerprint(self) -> list:
        """(name, size, mtime) per file: what the caches are keyed on."""
        return [file_stat(p) for p in self.paths]
