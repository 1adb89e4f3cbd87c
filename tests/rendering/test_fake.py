"""FakeRenderer: valid files of the requested format and size, failure injection, the renderer role
(no Chromium needed: nothing is started)."""

from __future__ import annotations

import asyncio
import io

import pytest
from pypdf import PdfReader
from tests.conftest import open_image

from pressrun import errors
from pressrun.errors import BrowserUnavailableError, EmptyOutputError, RowError
from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.rendering import ChromiumRenderer, Renderer
from pressrun.rendering.fake import FakeRenderer, RenderCall, colour_for, row_errors_by_code
from pressrun.settings import RenderSettings

PAGE = "<html><body>row 1</body></html>"


def test_both_renderers_play_the_renderer_role() -> None:
    # The annotation is for a type checker (signatures); isinstance checks the members at run time.
    renderers: list[Renderer] = [ChromiumRenderer(RenderSettings(concurrency=1)), FakeRenderer()]  # none started
    assert all(isinstance(renderer, Renderer) for renderer in renderers)


@pytest.mark.parametrize("fmt", [OutputFormat.PNG, OutputFormat.JPEG, OutputFormat.WEBP])
@pytest.mark.parametrize("scale", [1, 2])
async def test_each_image_format_decodes_to_the_device_size_in_the_documents_colour(fmt, scale) -> None:
    async with FakeRenderer() as renderer:
        result = await renderer.render(PAGE, RenderOptions(format=fmt, width_px=120, height_px=50, scale=scale))
    image = open_image(result.data)
    assert image.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt.value]
    assert image.size == (120 * scale, 50 * scale)
    assert (result.width_px, result.height_px, result.pages, result.format) == (120 * scale, 50 * scale, 1, fmt)
    assert result.render_ms >= 0
    pixel = image.convert("RGB").getpixel((10, 10))
    assert all(abs(got - want) <= 8 for got, want in zip(pixel, colour_for(PAGE), strict=True))  # JPEG is lossy


async def test_rows_get_different_colours_and_transparent_pngs_an_alpha_channel() -> None:
    assert colour_for("<p>a</p>") != colour_for("<p>b</p>")
    async with FakeRenderer() as renderer:
        result = await renderer.render(PAGE, RenderOptions(width_px=20, height_px=10, transparent=True))
    assert open_image(result.data).mode == "RGBA"


@pytest.mark.parametrize(
    ("pdf", "size_pt"),
    [(PdfOptions(), (300 * 0.75, 150 * 0.75)), (PdfOptions(page_size="a4", landscape=True), (841.89, 595.28))],
)
async def test_a_pdf_has_the_page_size_and_the_page_count_asked_for(pdf, size_pt) -> None:
    options = RenderOptions(format=OutputFormat.PDF, width_px=300, height_px=150, pdf=pdf)
    async with FakeRenderer() as renderer:
        one = await renderer.render(PAGE, options)
        three = await renderer.render('<div data-fake-pages="3"></div>', options)
    for result, count in ((one, 1), (three, 3)):
        reader = PdfReader(io.BytesIO(result.data))
        assert len(reader.pages) == count and result.pages == 1  # as the real renderer reports it
        box = reader.pages[0].mediabox
        assert (float(box.width), float(box.height)) == pytest.approx(size_pt, abs=0.01)
        assert (result.width_px, result.height_px) == options.output_size_px


async def test_every_call_is_recorded(tmp_path) -> None:
    options = RenderOptions(width_px=10, height_px=10)
    async with FakeRenderer() as renderer:
        await renderer.render("<p>a</p>", options, asset_root=tmp_path)
        await renderer.render("<p>b</p>", options)
    assert renderer.calls == [RenderCall("<p>a</p>", options, tmp_path), RenderCall("<p>b</p>", options, None)]


def test_every_row_error_of_errors_py_can_be_injected() -> None:
    declared = {cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, RowError)}
    assert set(row_errors_by_code().values()) == declared - {RowError}


@pytest.mark.parametrize(("code", "cls"), sorted(row_errors_by_code().items()))
async def test_a_marker_raises_the_row_error_with_that_code(code, cls) -> None:
    async with FakeRenderer() as renderer:
        with pytest.raises(cls) as info:
            await renderer.render(f'<div data-fake-error="{code}"></div>', RenderOptions(width_px=10, height_px=10))
    assert info.value.code == code


async def test_an_empty_capture_fails_like_the_real_ones() -> None:
    async with FakeRenderer() as renderer:
        with pytest.raises(EmptyOutputError, match=r"empty webp for a 40×20 px capture") as info:
            await renderer.render("<div data-fake-error='empty_output'>", RenderOptions(format=OutputFormat.WEBP,
                                                                                        width_px=20, height_px=10,
                                                                                        scale=2))
    assert info.value.details == {"format": "webp", "width": 40, "height": 20}


async def test_an_unknown_marker_names_the_valid_codes() -> None:
    async with FakeRenderer() as renderer:
        with pytest.raises(ValueError, match="render_timeout"):
            await renderer.render('<div data-fake-error="no_such_code">', RenderOptions())


async def test_chromium_gone_fails_start_render_and_readiness_until_it_is_back() -> None:
    renderer = FakeRenderer()
    renderer.unavailable = True
    with pytest.raises(BrowserUnavailableError):
        await renderer.start()
    renderer.unavailable = False
    async with renderer:
        assert renderer.is_connected()
        renderer.unavailable = True
        assert not renderer.is_connected()
        with pytest.raises(BrowserUnavailableError):
            await renderer.render(PAGE, RenderOptions())
        renderer.unavailable = False
        await renderer.render(PAGE, RenderOptions(width_px=10, height_px=10))
    assert not renderer.is_connected()


async def test_rendering_outside_start_and_close_is_refused() -> None:
    renderer = FakeRenderer()
    with pytest.raises(RuntimeError, match="not started"):
        await renderer.render(PAGE, RenderOptions())
    async with renderer:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.render(PAGE, RenderOptions())
    assert renderer.calls == []


async def test_a_delay_keeps_renders_in_flight_at_most_concurrency_at_once() -> None:
    async with FakeRenderer(concurrency=2, delay_s=0.05) as renderer:
        renders = [asyncio.create_task(renderer.render(f"<p>{i}</p>", RenderOptions(width_px=10, height_px=10)))
                   for i in range(5)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert renderer.in_flight == 2
        results = await asyncio.gather(*renders)
    assert renderer.peak_in_flight == 2
    assert renderer.in_flight == 0
    assert all(result.render_ms >= 50 for result in results)


async def test_a_cancelled_render_leaves_nothing_in_flight() -> None:
    async with FakeRenderer(delay_s=10) as renderer:
        render = asyncio.create_task(renderer.render(PAGE, RenderOptions()))
        await asyncio.sleep(0)
        assert renderer.in_flight == 1
        render.cancel()
        with pytest.raises(asyncio.CancelledError):
            await render
    assert renderer.in_flight == 0
