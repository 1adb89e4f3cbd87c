"""RenderOptions refuse what the renderer cannot produce, naming the field, the value and the limit."""

from __future__ import annotations

import pytest

from pressrun.errors import UsageError
from pressrun.models import OutputFormat, RenderOptions


@pytest.mark.parametrize(
    ("fmt", "width", "height", "scale", "field", "fragments"),
    [
        (OutputFormat.WEBP, 4096, 10, 4, "width", ("width: 4096 px × scale 4 = 16384 px", "WebP", "16383")),
        (OutputFormat.WEBP, 10, 5000, 4, "height", ("height: 5000 px × scale 4 = 20000 px", "16383")),
    ],
)
def test_an_image_larger_than_its_format_allows_is_a_usage_error(fmt, width, height, scale, field, fragments):
    with pytest.raises(UsageError) as caught:
        RenderOptions(format=fmt, width_px=width, height_px=height, scale=scale)
    assert caught.value.details["field"] == field
    for fragment in fragments:
        assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("fmt", "width", "scale"),
    [(OutputFormat.WEBP, 4095, 4), (OutputFormat.WEBP, 10_000, 1.6), (OutputFormat.JPEG, 10_000, 4),
     (OutputFormat.PNG, 10_000, 4), (OutputFormat.PDF, 10_000, 4)],
)
def test_sizes_within_the_formats_limit_are_accepted(fmt, width, scale):
    assert RenderOptions(format=fmt, width_px=width, height_px=10, scale=scale).width_px == width
