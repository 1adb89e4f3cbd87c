"""The item pipeline's steps, on the in-process engine and the fake renderer (no Chromium)."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from pressrun.errors import BrowserUnavailableError, InvalidValueError
from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.options import TemplateDefaults
from pressrun.pipeline import Failed, ItemPipeline, Rendered
from pressrun.rendering.fake import FakeRenderer
from pressrun.settings import Settings
from pressrun.templating.bundle import load_template
from pressrun.templating.engines import make_engine
from pressrun.templating.prepared import PreparedTemplate, prepare_bundle

ENGINE = make_engine(Settings())


@pytest.fixture
async def renderer():
    async with FakeRenderer(concurrency=2) as fake:
        yield fake


def stored(html: str, *, css: str = "", column_types=None) -> PreparedTemplate:
    from pressrun.data.types import parse_column_types

    return PreparedTemplate(ENGINE.compile(html), TemplateDefaults(), parse_column_types(column_types or {}, file="t"),
                            css=css)


async def test_the_steps_in_order_types_names_evaluates_wraps_and_renders(renderer):
    template = stored("<p>{{ (n * 2) | number }} {{ when.year }}</p>", css="p{color:red}",
                      column_types={"n": "integer", "when": "date"})
    pipeline = ItemPipeline(template, RenderOptions(width_px=40, height_px=20), renderer,
                            filename=ENGINE.compile("{{ n }} & {{ when }}"), locale="de_DE")
    outcome = await pipeline.run({"n": "1200", "when": "2026-12-08"})

    assert isinstance(outcome, Rendered)
    assert outcome.file_name == "1200 & 2026-12-08"  # typed, and text: not HTML-escaped
    [call] = renderer.calls
    assert "<p>2.400 2026</p>" in call.html  # typed (integer), evaluated with the locale
    assert call.html.index("<style>html,body{margin:0;padding:0}</style>") < call.html.index("<style>p{color:red}</style>")
    assert outcome.result.width_px == 40 and outcome.result.format is OutputFormat.PNG


async def test_a_bad_value_fails_the_row_before_anything_renders(renderer):
    pipeline = ItemPipeline(stored("{{ n }}", column_types={"n": "number"}), RenderOptions(), renderer)
    outcome = await pipeline.run({"n": "ten"})
    assert isinstance(outcome, Failed) and isinstance(outcome.error, InvalidValueError)
    assert outcome.body()["column"] == "n" and renderer.calls == []


async def test_errors_that_stop_are_raised_not_recorded(renderer):
    renderer.unavailable = True
    with pytest.raises(BrowserUnavailableError):
        await ItemPipeline(stored("x"), RenderOptions(), renderer).run({})


async def test_pdf_pages_are_counted_only_when_asked(renderer):
    options = RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions("a5"))
    template = stored("<div data-fake-pages='3'>x</div>")
    counted = await ItemPipeline(template, options, renderer, count_pages=True).run({})
    plain = await ItemPipeline(template, options, renderer).run({})
    assert counted.result.pages == 3 and len(PdfReader(io.BytesIO(counted.result.data)).pages) == 3
    assert plain.result.pages == 1  # what the renderer said; nobody asked


async def test_a_template_folder_links_its_stylesheet_and_loads_its_assets(renderer, tmp_path):
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "template.html").write_text("<img src='assets/logo.png'>{{ name }}")
    (folder / "style.css").write_text("img{width:1px}")
    (folder / "pressrun.toml").write_text('width = 300\nheight = 200\n[columns]\nage = "integer"\n')
    prepared = prepare_bundle(load_template(folder), ENGINE)
    outcome = await ItemPipeline(prepared, RenderOptions(), renderer).run({"name": "Ada", "age": "36"})
    [call] = renderer.calls
    assert isinstance(outcome, Rendered)
    assert '<link rel="stylesheet" href="style.css">' in call.html and call.asset_root == folder
    assert prepared.defaults.width_px == 300 and dict(prepared.column_types)
