"""Timeouts, crashes and recycling, with a real Chromium and a real slow server on loopback."""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import time

import psutil
import pytest
from tests.conftest import loopback_server, open_image

from pressrun.errors import BlockedUrlError, RenderTimeoutError
from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

OPTIONS = RenderOptions(format=OutputFormat.JPEG, width_px=200, height_px=100)
ROW = "<html><body style='margin:0;background:#00f'>row {}</body></html>"


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(3)
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.end_headers()
        self.wfile.write(b"<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server():
    with loopback_server(SlowHandler) as host:
        yield host


async def browser_processes(renderer: ChromiumRenderer) -> list[psutil.Process]:
    """This renderer's Chromium main processes, one per instance (pressrun starts them itself)."""
    pids = [instance.process_id for instance in renderer.instances]
    assert None not in pids, "every instance has a browser"
    return [psutil.Process(pid) for pid in pids]


def chromium_children() -> list[psutil.Process]:
    """The Chromium main processes this test process started (any renderer's), zombies included."""
    found = []
    for child in psutil.Process().children():
        try:
            zombie = child.status() == psutil.STATUS_ZOMBIE
            if ("chrom" in child.name()) if zombie else ("--remote-debugging-pipe" in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


async def test_slow_row_times_out_and_the_next_row_renders(slow_server):
    settings = RenderSettings(concurrency=1, timeout_s=1.0, allowed_hosts=[slow_server])
    async with ChromiumRenderer(settings) as renderer:
        started = time.perf_counter()
        with pytest.raises(RenderTimeoutError, match="within 1 s") as caught:
            await renderer.render(f"<html><body><img src='http://{slow_server}/slow.svg'></body></html>", OPTIONS)
        assert time.perf_counter() - started < 2.5
        assert caught.value.code == "render_timeout"
        result = await renderer.render(ROW.format(1), OPTIONS)
        assert open_image(result.data).size == (200, 100)


async def test_browser_killed_mid_batch_loses_no_row():
    async with ChromiumRenderer(RenderSettings(concurrency=4, browsers=2, timeout_s=20)) as renderer:
        await renderer.render(ROW.format(0), OPTIONS)  # browsers are up
        browsers = await browser_processes(renderer)
        assert len(browsers) == 2
        [browser] = [p for p in browsers if p.pid == await renderer.browser_pid()]

        rows = 200
        tasks = [asyncio.create_task(renderer.render(ROW.format(i), OPTIONS)) for i in range(rows)]
        while sum(task.done() for task in tasks) < 10:  # kill it mid-batch, with rows in flight
            await asyncio.sleep(0.005)
        os.kill(browser.pid, signal.SIGKILL)
        results = await asyncio.gather(*tasks)
        assert len(results) == rows
        assert all(open_image(r.data).size == (200, 100) for r in results)
        assert renderer.restarts == 1
        assert not browser.is_running() or browser.status() == psutil.STATUS_ZOMBIE
        # Both instances took rows: the survivor kept rendering while the other restarted.
        assert all(instance.rendered > 0 for instance in renderer.instances)


async def test_browser_is_recycled_after_n_renders_without_failing_rows():
    others = {p.pid for p in chromium_children()}  # other tests' renderers may still be open
    async with ChromiumRenderer(RenderSettings(concurrency=2, browsers=1, recycle_after=5)) as renderer:
        results = await asyncio.gather(*(renderer.render(ROW.format(i), OPTIONS) for i in range(23)))
        assert len(results) == 23
        assert renderer.restarts >= 3  # every 5-6 renders (renders in flight finish first)
        # Old browsers are closed and reaped, not leaked: the current one is all this renderer left.
        ours = {p.pid for p in chromium_children()} - others
        assert ours == {p.pid for p in await browser_processes(renderer)}


class AssetHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "https://elsewhere.example/x.svg")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.end_headers()
        self.wfile.write(b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'>"
                         b"<rect width='10' height='10' fill='#00c800'/></svg>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def asset_server():
    with loopback_server(AssetHandler) as host:
        yield host


async def test_allowed_host_loads_and_its_redirects_are_policed(asset_server):
    settings = RenderSettings(concurrency=1, allowed_hosts=[asset_server])
    image_row = "<html><body style='margin:0'><img src='http://{}/{}' style='width:200px;height:100px;display:block'></body></html>"
    async with ChromiumRenderer(settings) as renderer:
        result = await renderer.render(image_row.format(asset_server, "logo.svg"), OPTIONS)
        pixel = open_image(result.data).convert("RGB").getpixel((100, 50))
        assert all(abs(a - b) < 20 for a, b in zip(pixel, (0, 200, 0), strict=True))
        with pytest.raises(BlockedUrlError, match="elsewhere.example"):
            await renderer.render(image_row.format(asset_server, "redirect"), OPTIONS)


async def test_a_page_whose_renderer_process_dies_mid_row_is_retried_at_once(slow_server):
    # The usual crash in production (the kernel's OOM killer picks a renderer): the row in flight
    # waited for its whole timeout and failed as render_timeout; now it is retried on a fresh page.
    settings = RenderSettings(concurrency=1, browsers=1, timeout_s=20, allowed_hosts=[slow_server])
    async with ChromiumRenderer(settings) as renderer:
        await renderer.render(ROW.format(0), OPTIONS)
        [browser] = await browser_processes(renderer)
        renderers_before = {p.pid for p in browser.children(recursive=True) if "--type=renderer" in " ".join(p.cmdline())}
        assert renderers_before
        started = time.perf_counter()
        # The slow image holds the row in the page for 3 s: time to kill the page's process.
        row = asyncio.create_task(renderer.render(
            f"<html><body style='margin:0;background:#00f'><img src='http://{slow_server}/a.svg'></body></html>", OPTIONS))
        await asyncio.sleep(1.0)
        for pid in renderers_before:
            os.kill(pid, signal.SIGKILL)
        result = await row
        assert open_image(result.data).size == (200, 100)
        assert time.perf_counter() - started < 12  # the retry's own 3 s image, not the 20 s timeout
        assert renderer.restarts == 0  # only the page was replaced; the browser lived
