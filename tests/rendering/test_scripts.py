"""Non-Latin scripts and emoji render as real glyphs: not blank, not tofu boxes.

Tofu (the "missing glyph" box) looks the same for every character, so rendering characters one by
one and finding them all different proves real glyphs; emoji must come out in colour.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageChops
from tests.conftest import open_image

from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

CELL = "<html{attrs}><body style='margin:0;background:#fff'><div style='font:96px sans-serif;line-height:128px;padding:0 16px;color:#000'>{text}</div></body></html>"
OPTIONS = RenderOptions(format=OutputFormat.PNG, width_px=160, height_px=128)


@pytest.fixture(scope="module")
async def renderer():
    async with ChromiumRenderer(RenderSettings(concurrency=2)) as r:
        yield r


async def glyph(renderer, text: str, attrs: str = ""):
    result = await renderer.render(CELL.format(text=text, attrs=attrs), OPTIONS)
    return open_image(result.data).convert("RGB")


def ink(image) -> int:
    return int((np.asarray(image, dtype=np.int32).sum(axis=2) < 384).sum())


@pytest.mark.parametrize(
    ("script", "chars", "attrs"),
    [
        ("latin", "AgŒ", ""),
        ("cjk", "日本語", " lang='ja'"),
        ("hangul", "한국어", " lang='ko'"),
        ("arabic", "عرب", " lang='ar' dir='rtl'"),
        ("hebrew", "שלם", " lang='he' dir='rtl'"),
    ],
)
async def test_each_character_is_a_distinct_real_glyph(renderer, script, chars, attrs):
    images = [await glyph(renderer, ch, attrs) for ch in chars]
    for image in images:
        assert ink(image) > 150, f"{script}: blank render"
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            diff = ImageChops.difference(images[i], images[j]).getbbox()
            assert diff is not None, f"{script}: {chars[i]!r} and {chars[j]!r} render identically (tofu)"
    tofu = await glyph(renderer, "\U000e0fff")  # an unassigned code point: always the missing-glyph box
    for ch, image in zip(chars, images, strict=True):
        assert ImageChops.difference(image, tofu).getbbox() is not None, f"{ch!r} rendered as tofu"


async def test_emoji_render_in_colour(renderer):
    image = await glyph(renderer, "🍎")
    pixels = np.asarray(image, dtype=np.int32)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 100
    assert saturated.sum() > 500, "emoji rendered without colour (missing Noto Color Emoji?)"
    reds = saturated & (pixels[:, :, 0] > 150) & (pixels[:, :, 1] < 100)
    assert reds.sum() > 100, "an apple emoji should be red"
