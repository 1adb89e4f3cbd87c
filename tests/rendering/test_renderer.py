"""The renderer against real Chromium: formats, sizes, pixels, PDFs, scripts, policy, failures."""

from __future__ import annotations

import asyncio
import http.server
import io
import time
import unicodedata
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from pypdf import PdfReader
from tests.conftest import loopback_server, open_image

from pressrun.errors import AssetLoadError, BlockedUrlError
from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.rendering.page import PageSlot
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

SPLIT = """<!doctype html><html><head><style>
  body { margin: 0; width: 400px; height: 200px; display: flex; }
  .l { width: 200px; height: 200px; background: #ff0000; } .r { width: 200px; height: 200px; background: #0000ff; }
</style></head><body><div class="l"></div><div class="r">%s</div></body></html>"""


@pytest.fixture(scope="module")
async def renderer():
    async with ChromiumRenderer(RenderSettings(concurrency=2, timeout_s=10)) as r:
        yield r


def close_to(pixel, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], expected, strict=True))


@pytest.mark.parametrize("fmt", [OutputFormat.PNG, OutputFormat.JPEG, OutputFormat.WEBP])
@pytest.mark.parametrize("scale", [1, 2])
async def test_image_formats_have_exact_size_and_colours(renderer, fmt, scale):
    options = RenderOptions(format=fmt, width_px=400, height_px=200, scale=scale, quality=95)
    result = await renderer.render(SPLIT % "", options)
    image = open_image(result.data)
    assert image.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt.value]
    assert image.size == (400 * scale, 200 * scale) == (result.width_px, result.height_px)
    rgb = image.convert("RGB")
    assert close_to(rgb.getpixel((50 * scale, 100 * scale)), (255, 0, 0))
    assert close_to(rgb.getpixel((350 * scale, 100 * scale)), (0, 0, 255))


async def test_png_recompression_is_lossless_and_smaller():
    cells = "".join(
        f"<i style='display:inline-block;width:7px;height:9px;background:#{i * 2654435761 % 16**6:06x}'></i>"
        for i in range(800)
    )
    options = RenderOptions(format=OutputFormat.PNG, width_px=400, height_px=200)
    captured = {}
    for level in (0, 6):
        settings = RenderSettings(concurrency=1, png_compress_level=level)
        async with ChromiumRenderer(settings) as renderer:
            captured[level] = (await renderer.render(SPLIT % cells, options)).data
    assert np.array_equal(imagecodecs.png_decode(captured[0]), imagecodecs.png_decode(captured[6]))
    assert len(captured[6]) < 0.9 * len(captured[0])  # level 0 is Chromium's own fast encoding


async def test_transparent_png_keeps_alpha(renderer):
    html = "<html><body style='margin:0'><div style='width:50px;height:50px;background:#00ff00'></div></body></html>"
    options = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100, transparent=True)
    image = open_image((await renderer.render(html, options)).data).convert("RGBA")
    assert image.getpixel((10, 10)) == (0, 255, 0, 255)
    assert image.getpixel((90, 90))[3] == 0


async def test_pdf_page_size_count_and_text(renderer):
    html = """<html><head><style>@page { margin: 0 } body { margin: 0 }
      .p { height: 700px; break-after: page; font: 24px sans-serif }</style></head>
      <body><div class="p">Certificate for Ada Lovelace</div><div class="p">Second page</div></body></html>"""
    options = RenderOptions(format=OutputFormat.PDF, pdf=PdfOptions(page_size="a4", landscape=True))
    result = await renderer.render(html, options)
    reader = PdfReader(io.BytesIO(result.data))
    assert len(reader.pages) == 2
    box = reader.pages[0].mediabox
    # A4 landscape is 841.89 x 595.28 pt, exactly (pressrun.rendering.pagebox).
    assert abs(float(box.width) - 841.89) < 0.01 and abs(float(box.height) - 595.276) < 0.01
    # NFKC folds the "fi" ligature Chromium's text shaping puts into the PDF.
    assert "Certificate for Ada Lovelace" in unicodedata.normalize("NFKC", reader.pages[0].extract_text())
    assert "Second page" in reader.pages[1].extract_text()


async def test_pdf_without_page_size_uses_template_pixels(renderer):
    options = RenderOptions(format=OutputFormat.PDF, width_px=960, height_px=480)
    reader = PdfReader(io.BytesIO((await renderer.render(SPLIT % "x", options)).data))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (720, 360)  # 96 px = 72 pt


async def test_body_swap_renders_each_row_and_head_changes_apply(renderer):
    options = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100)
    template = "<html{attr}><head><style>body{{margin:0}} div{{width:100px;height:100px}}</style></head><body><div style='background:{color}'></div></body></html>"
    colours = {"#ff0000": (255, 0, 0), "#00ff00": (0, 255, 0), "#0000ff": (0, 0, 255)}
    for colour, expected in colours.items():
        result = await renderer.render(template.format(attr="", color=colour), options)
        assert open_image(result.data).convert("RGB").getpixel((50, 50)) == expected
    other_head = "<html><head><style>body{margin:0;background:#000}</style></head><body></body></html>"
    result = await renderer.render(other_head, options)
    assert open_image(result.data).convert("RGB").getpixel((50, 50)) == (0, 0, 0)


async def test_template_scripts_do_not_run(renderer):
    html = "<html><body style='margin:0;background:#fff'><script>document.body.style.background='#f00'</script></body></html>"
    options = RenderOptions(format=OutputFormat.PNG, width_px=50, height_px=50)
    image = open_image((await renderer.render(html, options)).data).convert("RGB")
    assert image.getpixel((25, 25)) == (255, 255, 255)


def make_asset_folder(tmp_path: Path) -> Path:

    root = tmp_path / "tpl"
    (root / "assets").mkdir(parents=True)
    Image.new("RGB", (10, 10), (0, 200, 0)).save(root / "assets" / "green.png")
    Image.new("RGB", (10, 10), (200, 0, 0)).save(tmp_path / "secret.png")
    return root


async def test_template_assets_load_by_relative_url(renderer, tmp_path):
    root = make_asset_folder(tmp_path)
    html = "<html><body style='margin:0'><img src='assets/green.png' style='width:100px;height:100px;display:block'></body></html>"
    options = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100)
    image = open_image((await renderer.render(html, options, asset_root=root)).data).convert("RGB")
    assert close_to(image.getpixel((50, 50)), (0, 200, 0))


async def test_a_warm_page_never_shows_another_templates_or_an_older_asset(tmp_path):
    """Same asset URL, different files: two templates with their own assets/logo.png, and a logo
    replaced between two renders, all on one warm page (Blink caches images by URL per document)."""
    html = "<html><body style='margin:0'><img src='assets/logo.png' style='width:40px;height:40px;display:block'></body></html>"
    options = RenderOptions(format=OutputFormat.PNG, width_px=40, height_px=40)
    roots = {}
    for name, colour in (("a", (0, 200, 0)), ("b", (0, 0, 200))):
        roots[name] = tmp_path / name
        (roots[name] / "assets").mkdir(parents=True)
        Image.new("RGB", (4, 4), colour).save(roots[name] / "assets" / "logo.png")

    async def shown(root: Path) -> tuple[int, int, int]:
        result = await renderer.render(html, options, asset_root=root)
        return open_image(result.data).convert("RGB").getpixel((20, 20))

    async with ChromiumRenderer(RenderSettings(concurrency=1)) as renderer:
        assert close_to(await shown(roots["a"]), (0, 200, 0))
        assert close_to(await shown(roots["b"]), (0, 0, 200))
        assert close_to(await shown(roots["a"]), (0, 200, 0))
        # Replaced the way storage writes files: a new file renamed over the old one.
        Image.new("RGB", (4, 4), (200, 0, 0)).save(roots["a"] / "new.png")
        (roots["a"] / "new.png").replace(roots["a"] / "assets" / "logo.png")
        assert close_to(await shown(roots["a"]), (200, 0, 0))


@pytest.mark.parametrize(
    ("src", "error", "fragment"),
    [
        ("https://example.com/logo.png", BlockedUrlError, "host 'example.com' is not in render.allowed_hosts"),
        ("http://127.0.0.1:9/x.png", BlockedUrlError, "host '127.0.0.1'"),
        ("../secret.png", AssetLoadError, "'secret.png' was not found"),
        ("/%2e%2e/secret.png", AssetLoadError, "'secret.png' was not found"),  # Chromium normalises it
        ("file:///etc/hostname", BlockedUrlError, "file: URLs are not allowed"),
        ("assets/missing.png", AssetLoadError, "'assets/missing.png' was not found"),
    ],
)
async def test_network_policy_fails_the_row(renderer, tmp_path, src, error, fragment):
    root = make_asset_folder(tmp_path)
    html = f"<html><body><img src='{src}'></body></html>"
    options = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100)
    with pytest.raises(error) as caught:
        await renderer.render(html, options, asset_root=root)
    assert fragment in caught.value.message


async def test_css_background_from_blocked_host_is_reported(renderer):
    html = "<html><head><style>body{background:url(https://tracker.example/p.gif)}</style></head><body>x</body></html>"
    with pytest.raises(BlockedUrlError, match="tracker.example"):
        await renderer.render(html, RenderOptions(format=OutputFormat.JPEG, width_px=50, height_px=50))


class LateImageHandler(http.server.BaseHTTPRequestHandler):
    """Serves a green PNG a little late, so a capture that does not wait for it paints no green."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(0.4)
        body = io.BytesIO()
        Image.new("RGB", (4, 4), (0, 200, 0)).save(body, "PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(body.getvalue())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def late_image_host():
    with loopback_server(LateImageHandler) as host:
        yield host


@pytest.mark.parametrize(
    "css",
    [
        "body{{margin:0}} div{{width:100px;height:100px;background:url(http://{host}/bg-{n}.png) 0 0/100% 100%}}",
        "body{{margin:0}} div{{width:100px;height:100px}} div::before{{content:'';display:block;width:100px;"
        "height:100px;background-image:url(http://{host}/bg-{n}.png);background-size:cover}}",
    ],
    ids=["element", "pseudo-element"],
)
async def test_capture_waits_for_late_css_background_images(late_image_host, css):
    settings = RenderSettings(concurrency=1, timeout_s=10, allowed_hosts=[late_image_host])
    options = RenderOptions(format=OutputFormat.PNG, width_px=100, height_px=100)
    async with ChromiumRenderer(settings) as renderer:
        # Row 1 loads the document; row 2 has the same head and only swaps the body.
        for n, body in enumerate(["<div></div>", "<div><span></span></div>"]):
            html = f"<html><head><style>{css.format(host=late_image_host, n=0)}</style></head><body>{body}</body></html>"
            image = open_image((await renderer.render(html, options)).data).convert("RGB")
            assert close_to(image.getpixel((50, 50)), (0, 200, 0)), f"row {n + 1}: background not painted"


async def test_css_background_asset_from_template_folder_is_painted(renderer, tmp_path):
    root = make_asset_folder(tmp_path)
    html = "<html><head><style>body{margin:0;background:url(assets/green.png) 0 0/100% 100%}</style></head><body></body></html>"
    options = RenderOptions(format=OutputFormat.JPEG, width_px=60, height_px=60, quality=95)
    image = open_image((await renderer.render(html, options, asset_root=root)).data).convert("RGB")
    assert close_to(image.getpixel((30, 30)), (0, 200, 0))


async def test_many_concurrent_renders_all_succeed(renderer):
    options = RenderOptions(format=OutputFormat.JPEG, width_px=400, height_px=200)
    results = await asyncio.gather(*(renderer.render(SPLIT % i, options) for i in range(12)))
    assert [open_image(r.data).size for r in results] == [(400, 200)] * 12


COLOURED = "<html><body style='margin:0;background:rgb({},{},{})'></body></html>"


def row_colour(index: int) -> tuple[int, int, int]:
    return (index * 37) % 256, (index * 91) % 256, (255 - index * 13) % 256


@pytest.mark.parametrize("fmt", [OutputFormat.PNG, OutputFormat.JPEG])
async def test_concurrent_pages_on_shared_browsers_capture_their_own_row(fmt):
    """Many pages over two browsers, each frame drawn on request: every capture shows its own row
    (no frame from another page or an earlier row), and no browser falls over doing it."""
    settings = RenderSettings(concurrency=6, browsers=2, timeout_s=20)
    options = RenderOptions(format=fmt, width_px=120, height_px=60)
    async with ChromiumRenderer(settings) as renderer:
        results = await asyncio.gather(
            *(renderer.render(COLOURED.format(*row_colour(i)), options) for i in range(60))
        )
        for index, result in enumerate(results):
            assert close_to(open_image(result.data).convert("RGB").getpixel((60, 30)), row_colour(index))
        assert renderer.restarts == 0
        assert all(instance.rendered >= 10 for instance in renderer.instances)


async def test_headless_shell_draws_frames_only_on_request():
    """The headless shell (what setup installs) runs with frame control: the fast capture path.
    If this fails, pressrun has fallen back to Page.captureScreenshot and lost most of its speed."""
    async with ChromiumRenderer(RenderSettings(concurrency=1)) as renderer:
        await renderer.render(SPLIT % "", RenderOptions(format=OutputFormat.PNG, width_px=400, height_px=200))
        assert [instance.frame_control for instance in renderer.instances] == [True]


async def test_a_probe_that_fails_for_another_reason_does_not_turn_frame_control_off(monkeypatch):
    """The frame-control probe failing for a passing reason (here: the page going away) must not
    leave a frame-controlled page on the capture path that waits for frames nobody draws: the
    page open fails, and the row is retried on a fresh page."""
    probes = []
    real_begin_frame = PageSlot.begin_frame

    async def flaky_begin_frame(self, params):
        if params == {"noDisplayUpdates": True}:
            probes.append(len(probes))
            if len(probes) == 1:
                raise PlaywrightError("Target page, context or browser has been closed")
        return await real_begin_frame(self, params)

    monkeypatch.setattr(PageSlot, "begin_frame", flaky_begin_frame)
    async with ChromiumRenderer(RenderSettings(concurrency=1, timeout_s=10)) as renderer:
        options = RenderOptions(format=OutputFormat.PNG, width_px=400, height_px=200)
        image = open_image((await renderer.render(SPLIT % "", options)).data).convert("RGB")
        assert close_to(image.getpixel((50, 100)), (255, 0, 0))
        assert len(probes) == 2
        assert [instance.frame_control for instance in renderer.instances] == [True]


FULL_CHROMIUM = Path("/usr/lib/chromium/chromium")


@pytest.mark.skipif(not FULL_CHROMIUM.is_file(), reason="Debian's full Chromium is not installed")
async def test_full_chromium_without_frame_control_renders_the_same():
    settings = RenderSettings(concurrency=2, chromium_path=str(FULL_CHROMIUM))
    async with ChromiumRenderer(settings) as renderer:
        for scale in (1, 2):
            options = RenderOptions(format=OutputFormat.PNG, width_px=400, height_px=200, scale=scale)
            image = open_image((await renderer.render(SPLIT % "", options)).data).convert("RGB")
            assert image.size == (400 * scale, 200 * scale)
            assert close_to(image.getpixel((50 * scale, 100 * scale)), (255, 0, 0))
            assert close_to(image.getpixel((350 * scale, 100 * scale)), (0, 0, 255))
        assert [instance.frame_control for instance in renderer.instances] == [False] * len(renderer.instances)


async def test_a_page_that_navigated_by_itself_renders_the_next_row_without_a_retry(caplog):
    # A meta refresh replaces the document (and its window) behind pressrun's back.
    options = RenderOptions(format=OutputFormat.PNG, width_px=50, height_px=50)
    refresh = "<html><head><meta http-equiv='refresh' content='0.3; url=/'></head><body></body></html>"
    green = "<html><body style='margin:0;background:#00ff00'></body></html>"
    async with ChromiumRenderer(RenderSettings(concurrency=1)) as renderer:
        await renderer.render(refresh, options)
        await asyncio.sleep(1.0)
        with caplog.at_level("WARNING"):
            result = await renderer.render(green, options)
    assert open_image(result.data).convert("RGB").getpixel((25, 25)) == (0, 255, 0)
    assert "render crashed" not in caplog.text
