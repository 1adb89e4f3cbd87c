"""PNG recompression: same pixels, every chunk kept, valid CRCs, at any level and chunking."""

from __future__ import annotations

import io
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from pressrun.rendering.encode import filtered_size, png_chunk, png_chunks, png_size, recompress_png


def split_idat(data: bytes, size: int) -> bytes:
    """The same PNG with its image data cut into IDAT chunks of ``size`` bytes, as Chromium writes."""
    out = [data[:8]]
    for kind, body in png_chunks(data):
        if kind == b"IDAT":
            out += [png_chunk(b"IDAT", body[i : i + size]) for i in range(0, len(body), size)]
        else:
            out.append(png_chunk(kind, body))
    return b"".join(out)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("level", [1, 3, 9])
def test_recompressed_png_has_the_same_pixels_and_valid_chunks(channels, level):
    rng = np.random.default_rng(7)
    pixels = (rng.integers(0, 4, (60, 90, channels)) * 60).astype(np.uint8)
    source = split_idat(imagecodecs.png_encode(pixels, level=1), 512)
    assert sum(kind == b"IDAT" for kind, _ in png_chunks(source)) > 1

    result = recompress_png(source, level)

    assert np.array_equal(imagecodecs.png_decode(result), pixels)
    Image.open(io.BytesIO(result)).verify()  # checks every chunk's CRC
    kinds = [kind for kind, _ in png_chunks(result)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"IDAT") == 1
    assert png_size(result) == (90, 60)


def test_level_zero_keeps_the_bytes_and_higher_levels_shrink():
    pixels = np.tile(np.arange(256, dtype=np.uint8), (80, 3)).reshape(80, 256, 3)
    fast = imagecodecs.png_encode(pixels, level=1)
    assert recompress_png(fast, 0) is fast
    assert len(recompress_png(fast, 9)) < len(fast)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a", "not a PNG"),
        (b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + b"\0" * 5, "truncated"),
    ],
)
def test_malformed_png_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        recompress_png(data, 3)


@pytest.mark.parametrize("height", [59, 61])
def test_image_data_that_disagrees_with_the_header_is_refused(height):
    pixels = np.zeros((60, 90, 3), dtype=np.uint8)
    source = imagecodecs.png_encode(pixels, level=1)
    header = bytearray(dict(png_chunks(source))[b"IHDR"])
    header[4:8] = height.to_bytes(4, "big")
    lying = source[:8] + png_chunk(b"IHDR", bytes(header)) + source[8 + 25 :]
    with pytest.raises(ValueError, match="header implies"):
        recompress_png(lying, 3)


@pytest.mark.parametrize(
    ("colour_type", "bit_depth", "interlace", "expected"),
    [(2, 8, 0, 60 * (1 + 90 * 3)), (6, 8, 0, 60 * (1 + 90 * 4)), (0, 1, 0, 60 * (1 + 12)),
     (6, 16, 0, 60 * (1 + 90 * 8)), (2, 8, 1, None)],
)
def test_filtered_size_follows_the_header(colour_type, bit_depth, interlace, expected):
    header = bytearray(imagecodecs.png_encode(np.zeros((60, 90, 3), dtype=np.uint8))[:33])
    header[24], header[25], header[28] = bit_depth, colour_type, interlace
    assert filtered_size(bytes(header)) == expected


def test_chunk_crc_covers_type_and_body():
    chunk = png_chunk(b"tEXt", b"k\0v")
    assert chunk[-4:] == zlib.crc32(b"tEXtk\0v").to_bytes(4, "big")
