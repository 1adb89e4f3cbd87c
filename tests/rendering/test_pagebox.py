"""PDF page boxes are the size asked for, to the hundredth of a point, and the files stay well formed:
every cross-reference entry still points at its object after the boxes are rewritten."""

from __future__ import annotations

import io
import re
import unicodedata

import pytest
from pypdf import PdfReader

from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.rendering.pagebox import exact_page_box
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

PAGES = """<html><head><style>@page { margin: 0 } body { margin: 0; font: 20px sans-serif }
  .p { height: 300px; break-after: page; }</style></head><body>%s</body></html>"""


@pytest.fixture(scope="module")
async def renderer():
    async with ChromiumRenderer(RenderSettings(concurrency=1, timeout_s=20)) as r:
        yield r


def check_structure(data: bytes) -> int:
    """Every in-use cross-reference entry points at 'N G obj' and startxref at the table; returns
    how many objects were checked. (pypdf alone would not notice: it searches around a bad offset.)"""
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    assert data.startswith(b"xref", startxref)
    checked = 0
    for section in re.finditer(rb"(\d+) (\d+)\r?\n((?:\d{10} \d{5} [nf](?: \r| \n|\r\n))+)", data[startxref:]):
        first = int(section.group(1))
        for index, entry in enumerate(re.findall(rb"(\d{10}) (\d{5}) ([nf])", section.group(3))):
            offset, generation, kind = entry
            if kind == b"n":
                header = b"%d %d obj" % (first + index, int(generation))
                assert data.startswith(header, int(offset)), (header, data[int(offset): int(offset) + 20])
                checked += 1
    return checked


def page_sizes(data: bytes) -> list[tuple[float, float]]:
    return [(float(page.mediabox.width), float(page.mediabox.height)) for page in PdfReader(io.BytesIO(data)).pages]


@pytest.mark.parametrize(
    ("page_size", "landscape", "expected_pt"),
    [
        ("a4", True, (841.89, 595.276)),  # Chromium writes 841.92 x 595.92
        ("a5", False, (419.528, 595.276)),  # 420 x 595.92: the exact box is longer text than Chromium's
        ("letter", False, (612.0, 792.0)),  # Chromium's own box is exact: nothing to change
    ],
)
async def test_pages_are_exactly_the_paper_size(renderer, page_size, landscape, expected_pt):
    options = RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions(page_size=page_size, landscape=landscape))
    data = (await renderer.render(PAGES % '<div class="p">first</div><div class="p">second</div>', options)).data
    sizes = page_sizes(data)
    assert len(sizes) == 2
    for width, height in sizes:
        assert width == pytest.approx(expected_pt[0], abs=0.005) and height == pytest.approx(expected_pt[1], abs=0.005)
    assert check_structure(data) > 5
    text = [unicodedata.normalize("NFKC", page.extract_text()) for page in PdfReader(io.BytesIO(data)).pages]
    assert "first" in text[0] and "second" in text[1]
    assert exact_page_box(data, *expected_pt) == data  # already exact: unchanged


async def test_the_top_left_corner_stays_where_layout_put_it(renderer):
    options = RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions(page_size="a4"))
    data = (await renderer.render(PAGES % "<div>x</div>", options)).data
    box = PdfReader(io.BytesIO(data)).pages[0].mediabox
    assert float(box.left) == 0  # trimmed at the right and bottom edges only
    assert float(box.top) > 841.89  # Chromium's own top edge (841.92), not cut
    assert float(box.top) - float(box.bottom) == pytest.approx(841.89, abs=0.005)


async def test_a_page_sized_in_pixels_is_exact_too(renderer):
    options = RenderOptions(format=OutputFormat.PDF, width_px=1200, height_px=630)  # 900 x 472.5 pt
    data = (await renderer.render(PAGES % "<div>x</div>", options)).data
    assert page_sizes(data) == [pytest.approx((900.0, 472.5), abs=0.005)]
    check_structure(data)


def test_a_file_of_another_shape_is_left_alone():
    # No classic cross-reference table to shift (a cross-reference stream, say): nothing is changed.
    data = b"%PDF-1.7\n1 0 obj\n<</Type /Page /MediaBox [0 0 595.92 842]>>\nendobj\nstartxref\n9\n%%EOF\n"
    assert exact_page_box(data, 595.276, 841.89) == data
    # A box far from the size asked for is no rounding of Chromium's: it is left as it is.
    assert exact_page_box(b"/MediaBox [0 0 300 300]", 595.276, 841.89) == b"/MediaBox [0 0 300 300]"


async def test_a_page_the_templates_css_turns_to_landscape_is_exact_too(renderer):
    html = PAGES.replace("@page { margin: 0 }", "@page { margin: 0; size: landscape }") % "<div>x</div>"
    data = (await renderer.render(html, RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions(page_size="a4")))).data
    assert page_sizes(data) == [pytest.approx((841.89, 595.276), abs=0.005)]
    check_structure(data)


async def test_text_that_reads_like_a_page_box_is_left_alone(renderer):
    title = "Invoice /MediaBox [0 0 595.92 841.92] total"
    html = f"<html><head><title>{title}</title></head><body>{title}</body></html>"
    data = (await renderer.render(html, RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions(page_size="a4")))).data
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata.title == title
    assert page_sizes(data) == [pytest.approx((595.276, 841.89), abs=0.005)]
    check_structure(data)
