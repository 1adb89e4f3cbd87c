"""PNG recompression done in Python, off Chromium's critical path.

Chromium's default PNG encoder (zlib level 6, adaptive filters) is the slowest step of a PNG
capture. pressrun asks Chromium for its fast PNG instead (already filtered, deflated at level 1;
about 1.35x the size of the default encoding) and writes it as it is unless
``render.png_compress_level`` is above 0: then it deflates the same filtered rows again with
zlib-ng at that level. Pixels, filters and every other chunk stay as Chromium wrote them, so
this costs an inflate and a deflate, no pixel decoding. imagecodecs releases the GIL, so
this runs in worker threads beside the event loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def recompress_png(data: bytes, level: int) -> bytes:
    """``data`` with its image data deflated again at zlib ``level`` (0 returns it unchanged)."""
    if level == 0:
        return data
    # imagecodecs pulls in numpy: a tenth of a second of start-up that only recompressing runs pay.
    import imagecodecs

    chunks = list(png_chunks(data))
    size = filtered_size(data)
    # Both buffers are sized up front: letting the codec grow them costs more than the deflate.
    try:
        rows = imagecodecs.zlibng_decode(b"".join(body for kind, body in chunks if kind == b"IDAT"), out=size)
    except imagecodecs.ZlibngError as exc:
        raise ValueError(f"PNG image data does not inflate to the size its header implies ({exc})") from exc
    if size is not None and len(rows) != size:
        raise ValueError(f"PNG image data holds {len(rows)} bytes, not the {size} its header implies")
    image_data = imagecodecs.zlibng_encode(rows, level=level, out=deflate_bound(len(rows)))
    out = [PNG_SIGNATURE]
    for index, (kind, body) in enumerate(chunks):
        if kind != b"IDAT":
            out.append(png_chunk(kind, body))
        elif chunks[index - 1][0] != b"IDAT":  # the first of a run of IDATs carries all the data
            out.append(png_chunk(b"IDAT", image_data))
    return b"".join(out)


# Samples per pixel by PNG colour type: grey, RGB, palette, grey + alpha, RGBA.
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def filtered_size(data: bytes) -> int | None:
    """Bytes of filtered scanlines the IHDR implies (one filter byte per row), or None when
    interlaced, where the passes make the sum awkward and the decoder may size it."""
    width, height = png_size(data)
    bit_depth, colour_type, interlace = data[24], data[25], data[28]
    if interlace or colour_type not in CHANNELS:
        return None
    return height * (1 + (width * CHANNELS[colour_type] * bit_depth + 7) // 8)


def deflate_bound(size: int) -> int:
    """More than deflate can ever write for ``size`` bytes at any level (zlib-ng's own bound is lower)."""
    return size + (size >> 3) + (size >> 6) + 64


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
