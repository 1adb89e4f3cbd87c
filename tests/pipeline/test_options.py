"""The one options resolver: the same rule for the CLI and the API (pressrun.options)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pressrun.errors import UsageError
from pressrun.models import OutputFormat, PdfOptions
from pressrun.options import (
    Overrides,
    TemplateDefaults,
    batch_fields,
    resolve_locale,
    resolve_options,
    stored_batch_options,
)

A4_TEMPLATE = TemplateDefaults(width_px=200, height_px=100, format=OutputFormat.PDF, quality=80, scale=2.0,
                               locale="de_DE", pdf=PdfOptions(page_size="a4", landscape=True, margin_mm=5))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # nothing asked: the template's own settings
        (Overrides(), dict(format=OutputFormat.PDF, width_px=200, height_px=100, quality=80, scale=2.0,
                           pdf=PdfOptions("a4", True, 5.0))),
        # a page asked for in pixels replaces the named page; the margin stays
        (Overrides(width_px=300), dict(width_px=300, height_px=100, pdf=PdfOptions(None, False, 5.0))),
        (Overrides(height_px=400), dict(width_px=200, height_px=400, pdf=PdfOptions(None, False, 5.0))),
        # an explicit page size in the same request wins over the pixels
        (Overrides(width_px=300, page_size="Letter"), dict(width_px=300, pdf=PdfOptions("letter", False, 5.0))),
        # page fields one by one
        (Overrides(landscape=False), dict(pdf=PdfOptions("a4", False, 5.0))),
        (Overrides(margin_mm=0), dict(pdf=PdfOptions("a4", True, 0.0))),
        # image overrides; "jpg" is JPEG
        (Overrides(format="jpg", quality=50, scale=1), dict(format=OutputFormat.JPEG, quality=50, scale=1)),
        (Overrides(selector="#card"), dict(selector="#card")),
    ],
)
def test_overrides_over_template_defaults(overrides, expected):
    options = resolve_options(A4_TEMPLATE, overrides)
    for name, value in expected.items():
        assert getattr(options, name) == value, name


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        (Overrides(format="gif8"), "format", "valid formats are png, jpeg, webp, pdf"),
        (Overrides(quality=0), "quality", "valid values are 1 to 100"),
        (Overrides(width_px=20_000), "width", "valid values are 1 to 10000"),
        (Overrides(page_size="b5"), "pdf.page_size", "one of letter"),
        (Overrides(margin_mm=150), "pdf.margin_mm", "from 0 to 100"),
        (Overrides(format="webp", width_px=5000, scale=4), "width", "more than a WebP image can hold"),
    ],
)
def test_a_bad_override_names_the_field_the_value_and_what_is_valid(overrides, field, fragment):
    with pytest.raises(UsageError) as caught:
        resolve_options(A4_TEMPLATE, overrides)
    assert caught.value.details["field"] == field
    assert fragment in caught.value.message


def test_locale_is_the_override_else_the_template():
    assert resolve_locale(A4_TEMPLATE, Overrides()) == "de_DE"
    assert resolve_locale(A4_TEMPLATE, Overrides(locale="ja_JP")) == "ja_JP"
    assert resolve_locale(TemplateDefaults(), Overrides()) is None


def test_a_batch_renders_with_exactly_the_options_it_stored():
    options = resolve_options(A4_TEMPLATE, Overrides(width_px=300))
    stored = SimpleNamespace(**batch_fields(options), locale="de_DE")  # a batch row also has its locale
    assert stored_batch_options(stored, template_pdf=PdfOptions("a3")) == options
    # A batch accepted before its page was stored uses its template version's page.
    legacy = SimpleNamespace(**{**batch_fields(options), "pdf": None, "locale": None})
    assert stored_batch_options(legacy, template_pdf=PdfOptions("a3")).pdf == PdfOptions("a3")


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"page_size": "a9"}, "pdf.page_size", "one of letter"),
        ({"pagesize": "a4"}, "pdf.pagesize", "page_size, landscape, margin_mm"),
        ({"landscape": "yes"}, "pdf.landscape", "true or false"),
        ({"margin_mm": True}, "pdf.margin_mm", "millimetres"),
        ("a4", "pdf", "a table with page_size"),
    ],
)
def test_the_one_pdf_converter_refuses_what_it_cannot_read(raw, field, fragment):
    with pytest.raises(UsageError) as caught:
        PdfOptions.from_dict(raw)
    assert caught.value.details["field"] == field
    assert fragment in caught.value.message


def test_the_pdf_converter_round_trips_and_defaults():
    assert PdfOptions.from_dict(None) == PdfOptions()
    options = PdfOptions.from_dict({"page_size": "A5", "landscape": True, "margin_mm": 7})
    assert options == PdfOptions("a5", True, 7.0)
    assert PdfOptions.from_dict(options.to_dict()) == options
