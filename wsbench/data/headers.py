"""Image file headers read without decoding: the size a file declares, a PNG's mode, damaged PNG chunks.

:mod:`wsbench.data.io` checks these before OpenCV decodes anything, so a decompression bomb is refused
by its declared size and a truncated or corrupt PNG is reported in one line by wsbench alone.
"""

from __future__ import annotations

import zlib

__all__ = ["PNG_SIGNATURE", "declared_size", "palette_as_indices", "png_mode", "png_problem"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The ``(width, height)`` an image file's header declares, without decoding it.

    Reads PNG (IHDR), JPEG (the SOF marker), BMP, WebP (VP8, VP8L, VP8X) and TIFF (first image
    file directory) headers.

    Returns:
        The size, or ``None`` for other formats and headers too short to say.
    """
    be = lambda i, n: int.from_bytes(data[i:i + n], "big")  # noqa: E731
    le = lambda i, n: int.from_bytes(data[i:i + n], "little")  # noqa: E731
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        return be(16, 4), be(20, 4)
    if data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 9 <= len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
                pos += 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                return be(pos + 7, 2), be(pos + 5, 2)
            pos += 2 + be(pos + 2, 2)
        return None
    if data.startswith(b"BM") and len(data) >= 26:
        if le(14, 4) == 12:  # OS/2 core header: 16-bit sizes
            return le(18, 2), le(20, 2)
        return abs(int.from_bytes(data[18:22], "little", signed=True)), \
            abs(int.from_bytes(data[22:26], "little", signed=True))
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8X":
            return 1 + le(24, 3), 1 + le(27, 3)
        if kind == b"VP8 ":
            return le(26, 2) & 0x3FFF, le(28, 2) & 0x3FFF
        if kind == b"VP8L":
            bits = le(21, 4)
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and length of a classic TIFF's first image (what OpenCV decodes)."""
    big = data[:2] == b"MM"
    num = lambda i, n: int.from_bytes(data[i:i + n], "big" if big else "little")  # noqa: E731
    ifd = num(4, 4)
    if len(data) < ifd + 2:
        return None
    sizes = {}
    for k in range(num(ifd, 2)):
        entry = ifd + 2 + 12 * k
        if len(data) < entry + 12:
            return None
        tag, kind = num(entry, 2), num(entry + 2, 2)
        if tag in (256, 257) and kind in (3, 4):  # ImageWidth, ImageLength as SHORT or LONG
            sizes[tag] = num(entry + 8, 2 if kind == 3 else 4)
    return (sizes[256], sizes[257]) if len(sizes) == 2 else None


def png_mode(data: bytes) -> tuple[int, int]:
    """A PNG's (bit depth, colour type) from its IHDR, ``(0, -1)`` for other files."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24], data[25]
    return 0, -1


def palette_as_indices(data: bytes) -> bytes:
    """The PNG with its palette replaced by a grey ramp (entry i = grey i) and transparency dropped,
    so that decoding gives each pixel's palette index. A damaged palette chunk is left as it is,
    for the decoder's check to report."""
    out = [data[:len(PNG_SIGNATURE)]]
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        chunk = data[pos:end]
        intact = end <= len(data) and zlib.crc32(data[pos + 4:end - 4]) == int.from_bytes(data[end - 4:end], "big")
        if kind == b"PLTE" and intact and length % 3 == 0:
            body = b"PLTE" + bytes(i for i in range(length // 3) for _ in range(3))
            chunk = data[pos:pos + 4] + body + zlib.crc32(body).to_bytes(4, "big")
        elif kind == b"tRNS" and intact:
            chunk = b""
        out.append(chunk)
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def png_problem(data: bytes) -> str | None:
    """Why a PNG file is damaged (``None`` if every chunk is complete and its CRC matches).

    Checking before decoding keeps libpng from printing its own error lines.
    """
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            break
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"corrupt PNG: CRC mismatch in chunk {kind.decode('latin-1')!r}"
        if kind == b"IEND":
            return None
        pos = end
    return "truncated PNG: the file ends before its IEND chunk"
