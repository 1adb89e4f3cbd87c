"""PNG recompression done in Python, off Chromium's critical path.

Chromium's default PNG encoder (zlib level 6, adaptive filters) is the slowest step of a PNG
capture. pressrun asks Chromium for its fast PNG instead (already filtered, deflated at level 1)
and, when ``render.png_compress_level`` is above 0, deflates the same filtered rows again with
zlib-ng at that level. Pixels, filters and every other chunk stay as Chromium wrote them, so
this costs an inflate and a deflate, no pixel decoding. imagecodecs releases the GIL, so
this runs in worker threads beside the event loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import imagecodecs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def recompress_png(data: bytes, level: int) -> bytes:
    """``data`` with its image data deflated again at zlib ``level`` (0 returns it unchanged)."""
    if level == 0:
        return data
    chunks = list(png_chunks(data))
    rows = imagecodecs.zlibng_decode(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    image_data = imagecodecs.zlibng_encode(rows, level=level)
    out = [PNG_SIGNATURE]
    for index, (kind, body) in enumerate(chunks):
        if kind != b"IDAT":
            out.append(png_chunk(kind, body))
        elif chunks[index - 1][0] != b"IDAT":  # the first of a run of IDATs carries all the data
            out.append(png_chunk(b"IDAT", image_data))
    return b"".join(out)


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each chunk of a PNG, checking the structure but not the CRCs."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG")
    position = 8
    while position < len(data):
        if position + 12 > len(data):
            raise ValueError("truncated PNG chunk")
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        yield kind, data[position + 8 : position + 8 + length]
        position = end


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(kind))
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
