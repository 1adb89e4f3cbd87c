"""Image encoding done in Python, off Chromium's critical path.

Chromium's PNG encoder (zlib level 6, adaptive filters) is the slowest step of a PNG render. pressrun
asks Chromium for its fast PNG (large, cheap) and recompresses it here with imagecodecs (libpng over
zlib-ng, SUB filter), which gives files no larger than Chromium's default at a fraction of the CPU.
imagecodecs releases the GIL, so this runs in worker threads beside the event loop.
"""

from __future__ import annotations

import imagecodecs


def recompress_png(data: bytes, level: int) -> bytes:
    pixels = imagecodecs.png_decode(data)
    return imagecodecs.png_encode(pixels, level=level, filter=imagecodecs.PNG.FILTER.SUB)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
