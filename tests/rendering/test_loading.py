"""When a row counts as loaded: every stylesheet in (wherever it is linked), and every request the
document makes, on every row, checked against the network policy, including what a stylesheet asks for."""

from __future__ import annotations

import http.server
import time
from pathlib import Path

import pytest
from tests.conftest import loopback_server, open_image

from pressrun.errors import AssetLoadError, BlockedUrlError
from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

OPTIONS = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100)
GREEN = (0, 160, 0)


class SlowStylesheetHandler(http.server.BaseHTTPRequestHandler):
    """/late.css: a green background, 0.5 s late. /plain.css: the same as text/plain. /gone.css: 404."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith(("/late.css", "/plain.css")):
            plain = self.path.startswith("/plain.css")
            time.sleep(0 if plain else 0.5)
            body = b"html, body { margin: 0; background: rgb(0, 160, 0); }"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain" if plain else "text/css")
        else:
            body = b"not here"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def css_host():
    with loopback_server(SlowStylesheetHandler) as host:
        yield host


@pytest.fixture(scope="module")
async def renderer(css_host):
    # One page, so consecutive renders share it: the first loads a document, the next swap its body.
    settings = RenderSettings(concurrency=1, browsers=1, timeout_s=8, allowed_hosts=[css_host])
    async with ChromiumRenderer(settings) as r:
        yield r


def template_folder(tmp_path: Path, stylesheet: str) -> Path:
    root = tmp_path / "template"
    (root / "assets").mkdir(parents=True)
    (root / "style.css").write_text(stylesheet)
    (root / "assets" / "green.css").write_text("html, body { margin: 0; background: rgb(0, 160, 0); }")
    return root


def colour_at_centre(data: bytes) -> tuple[int, int, int]:
    return open_image(data).convert("RGB").getpixel((50, 50))


def close_to(pixel, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize(
    "html",
    [
        '<html><head></head><body><link rel="stylesheet" href="assets/green.css"><p>{n}</p></body></html>',
        '<link rel="stylesheet" href="assets/green.css"><p>{n}</p>',  # a fragment: pressrun wraps it in a body
    ],
    ids=["in-body", "fragment"],
)
async def test_a_stylesheet_linked_in_the_body_loads_and_applies(renderer, tmp_path, html):
    # It timed out every row: with JavaScript off the page never ran the load listener it waited on.
    root = template_folder(tmp_path, "")
    started = time.monotonic()
    for n in range(3):
        result = await renderer.render(html.format(n=n), OPTIONS, asset_root=root)
        assert close_to(colour_at_centre(result.data), GREEN), f"row {n + 1}: stylesheet not applied"
    assert time.monotonic() - started < 5


async def test_the_first_row_waits_for_a_late_stylesheet(renderer, css_host):
    # document.write() reports readyState 'complete' before a linked stylesheet has arrived; the
    # capture must still wait for it. A fresh URL each time, so no cache answers early.
    for n in range(2):
        html = f'<html><head><link rel="stylesheet" href="http://{css_host}/late.css?{n}"></head><body></body></html>'
        result = await renderer.render(html, OPTIONS)
        assert close_to(colour_at_centre(result.data), GREEN), f"document {n + 1} captured before its stylesheet"


@pytest.mark.parametrize(
    ("stylesheet", "error", "fragment"),
    [
        (".x { background: url(assets/nope.png) }", AssetLoadError, "'assets/nope.png' was not found"),
        ('@import url("https://example.com/a.css"); .x { color: red }', BlockedUrlError, "example.com/a.css"),
        ("@font-face { font-family: F; src: url(https://example.com/f.woff2) } .x { font-family: F }",
         BlockedUrlError, "example.com/f.woff2"),
        (".x::before { content: url(https://example.com/c.png) }", BlockedUrlError, "example.com/c.png"),
    ],
    ids=["missing-background", "blocked-import", "blocked-font", "blocked-generated-content"],
)
async def test_what_the_template_stylesheet_requests_fails_every_row(renderer, tmp_path, stylesheet, error, fragment):
    # Only the first row of a page requested these (later rows swap the body under the same
    # <head>), so rows 2 and on passed with the asset silently missing.
    root = template_folder(tmp_path, stylesheet)
    for n in range(3):
        html = f'<html><head><link rel="stylesheet" href="style.css"></head><body><div class="x">{n}</div></body></html>'
        with pytest.raises(error) as caught:
            await renderer.render(html, OPTIONS, asset_root=root)
        assert fragment in caught.value.message, f"row {n + 1}: {caught.value.message}"


@pytest.mark.parametrize(
    "element",
    [
        '<svg width="10" height="10"><image href="https://example.com/i.png" width="10" height="10"/></svg>',
        '<video poster="https://example.com/poster.png"></video>',
        '<img srcset="https://example.com/s.png 1x">',
        '<input type="image" src="https://example.com/button.png">',
    ],
    ids=["svg-image", "video-poster", "img-srcset", "input-image"],
)
async def test_images_outside_img_src_are_checked_too(renderer, element):
    with pytest.raises(BlockedUrlError, match="example.com"):
        await renderer.render(f"<html><body>{element}</body></html>", OPTIONS)


async def test_a_stylesheet_an_allowed_host_answers_with_an_error_fails_the_row_at_once(renderer, css_host):
    started = time.monotonic()
    html = f'<html><head><link rel="stylesheet" href="http://{css_host}/gone.css"></head><body></body></html>'
    with pytest.raises(AssetLoadError, match="gone.css failed to load: HTTP 404"):
        await renderer.render(html, OPTIONS)
    assert time.monotonic() - started < 5  # not the render timeout


async def test_a_clean_row_after_a_failed_one_renders(renderer, tmp_path):
    root = template_folder(tmp_path, "html, body { margin: 0; background: rgb(0, 160, 0); }")
    head = '<html><head><link rel="stylesheet" href="style.css"></head>'
    with pytest.raises(BlockedUrlError):
        await renderer.render(f'{head}<body><img src="https://example.com/x.png"></body></html>', OPTIONS, asset_root=root)
    result = await renderer.render(f"{head}<body><p>clean</p></body></html>", OPTIONS, asset_root=root)
    assert close_to(colour_at_centre(result.data), GREEN)


@pytest.mark.parametrize(
    "link",
    [
        '<link rel="stylesheet" type="text/plain" href="assets/green.css">',  # a type Blink does not load
        '<link rel="stylesheet" href="">',  # no stylesheet at all
        '<link rel="stylesheet" href="http://{host}/plain.css">',  # fetched, refused: served as text/plain
        '<link rel="alternate stylesheet" href="assets/green.css" title="alt">',
    ],
    ids=["other-type", "empty-href", "wrong-mime", "alternate"],
)
async def test_a_stylesheet_blink_never_applies_does_not_hold_the_row_until_the_timeout(renderer, tmp_path, css_host,
                                                                                      link):
    root = template_folder(tmp_path, "")
    started = time.monotonic()
    html = f"<html><head>{link.format(host=css_host)}</head><body><p>x</p></body></html>"
    result = await renderer.render(html, OPTIONS, asset_root=root)
    assert colour_at_centre(result.data) == (255, 255, 255)  # none of them applies
    assert time.monotonic() - started < 5  # the render timeout is 8 s


async def test_a_refused_stylesheet_in_the_body_does_not_hold_later_rows(renderer, css_host):
    # Rows 2 and on swap the body under the same document, which reuses the refused sheet unasked:
    # no new fetch to see. The document remembers what it found refused.
    started = time.monotonic()
    for n in range(3):
        html = f'<html><head></head><body><link rel="stylesheet" href="http://{css_host}/plain.css"><p>{n}</p></body></html>'
        await renderer.render(html, OPTIONS)
    assert time.monotonic() - started < 6


async def test_with_javascript_a_refused_stylesheet_does_not_hold_the_row(css_host):
    settings = RenderSettings(concurrency=1, browsers=1, timeout_s=8, javascript=True, allowed_hosts=[css_host])
    async with ChromiumRenderer(settings) as renderer:
        started = time.monotonic()
        for n in range(2):
            html = f'<html><head><link rel="stylesheet" href="http://{css_host}/plain.css?{n}"></head><body></body></html>'
            await renderer.render(html, OPTIONS)
        assert time.monotonic() - started < 6
