"""The supervisor that owns Chromium: browsers, pools of warm pages, recycling, crash recovery, timeouts.

Callers only ever see :meth:`ChromiumRenderer.render`: document in, :class:`RenderResult` out.

- ``render.browsers`` Chromium instances run side by side, and ``render.concurrency`` pages are
  shared out among them; each render goes to the instance with the most free pages. One instance
  draws one frame at a time (see page.py), so a second one is what keeps a second core busy.
- After ``render.recycle_after`` renders an instance restarts its browser: new renders on it wait
  while the ones in flight finish, then a fresh browser takes over. Memory stays flat over long runs.
- If a browser dies (or a page crashes) mid-render, the browser/page is replaced and the row that
  was in flight is retried once; a second failure fails only that row (``render_crashed``).
- A row that takes longer than ``render.timeout_s`` fails with ``render_timeout``; its page is thrown
  away so nothing it left running can affect the next row.

Translating Playwright's exceptions into ours happens here and in ``chromium.py`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Playwright
from playwright.async_api import Error as PlaywrightError

from pressrun.driver import start_playwright
from pressrun.errors import EmptyOutputError, RenderCrashError, RenderTimeoutError
from pressrun.models import OutputFormat, RenderOptions, RenderResult
from pressrun.rendering.assets import AssetCache
from pressrun.rendering.bridge import Chromium
from pressrun.rendering.chromium import launch_chromium
from pressrun.rendering.encode import recompress_png
from pressrun.rendering.page import Geometry, PageSlot
from pressrun.rendering.policy import NetworkPolicy
from pressrun.settings import RenderSettings

log = logging.getLogger(__name__)
PAGE_OPEN_TIMEOUT_S = 60
BROWSER_PING_TIMEOUT_S = 5


class ChromiumRenderer:
    """Async context manager; one per process (or per worker). Spreads renders over instances."""

    def __init__(
        self, settings: RenderSettings, *, concurrency: int | None = None, driver: Awaitable[Playwright] | None = None
    ) -> None:
        """``driver``: Playwright already starting (pressrun.driver.PrestartedDriver), lent to this
        renderer, which closes its browsers but leaves the driver to its owner; by default the renderer
        starts a driver of its own and stops it on close."""
        self.settings = settings
        self._driver = driver
        self._owns_driver = driver is None
        self.concurrency = concurrency or settings.concurrency
        count = max(1, min(settings.browsers, self.concurrency))
        pages = [self.concurrency // count + (index < self.concurrency % count) for index in range(count)]
        self.instances = [ChromiumInstance(settings, concurrency=n) for n in pages]
        self._busy = [0] * count
        self._playwright: Playwright | None = None

    async def __aenter__(self) -> ChromiumRenderer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._driver is not None:
            self._playwright = await self._driver
        else:
            self._playwright = await start_playwright()
        try:
            await asyncio.gather(*(instance.start(self._playwright) for instance in self.instances))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await asyncio.gather(*(instance.close() for instance in self.instances))
        if self._playwright is not None and self._owns_driver:
            await self._playwright.stop()
        self._playwright = None

    @property
    def restarts(self) -> int:
        """Browser restarts (recycles and crashes) over all instances, for logs and tests."""
        return sum(instance.restarts for instance in self.instances)

    def is_connected(self) -> bool:
        """Every instance's Chromium is up (or being restarted, which the next render awaits)."""
        return all(instance.is_connected() for instance in self.instances)

    async def browser_pid(self) -> int | None:
        """The first instance's browser process id (crash tests, diagnostics)."""
        return await self.instances[0].browser_pid()

    async def render(self, html: str, options: RenderOptions, *, asset_root: Path | None = None) -> RenderResult:
        """Render one document on the instance with the most free pages. Raises RowError subclasses
        for row-level failures."""
        index = min(range(len(self.instances)), key=lambda i: self._busy[i] / self.instances[i].concurrency)
        self._busy[index] += 1
        try:
            return await self.instances[index].render(html, options, asset_root=asset_root)
        finally:
            self._busy[index] -= 1


class ChromiumInstance:
    """One Chromium browser and its pool of warm pages."""

    def __init__(self, settings: RenderSettings, *, concurrency: int) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.policy = NetworkPolicy(tuple(settings.allowed_hosts))
        self.restarts = 0  # browser restarts (recycles and crashes), for logs and tests
        self.rendered = 0  # renders finished (successfully or not) on this instance
        self._assets = AssetCache()
        self._playwright: Playwright | None = None
        self._chromium: Chromium | None = None  # the process, its pipe, and Playwright's Browser over it
        self.frame_control = False  # whether its pages draw only on request (chromium.py), as last seen
        self._frame_lock = asyncio.Lock()  # one frame at a time per browser (page.PageSlot.frame_lock)
        self._generation = 0
        self._free: asyncio.Queue[PageSlot] = asyncio.Queue()
        self._open_gate = asyncio.Event()
        self._state = asyncio.Condition()
        self._in_flight = 0
        self._renders_since_launch = 0
        self._restart_lock = asyncio.Lock()
        self._recycle_task: asyncio.Task[None] | None = None
        self._disconnected = asyncio.Event()

    async def start(self, playwright: Playwright) -> None:
        self._playwright = playwright
        await self._launch()
        for index in range(self.concurrency):
            self._free.put_nowait(
                PageSlot(
                    index,
                    self.policy,
                    self._assets,
                    javascript=self.settings.javascript,
                    fetch_timeout_s=self.settings.timeout_s,
                )
            )
        self._open_gate.set()

    async def close(self) -> None:
        if self._recycle_task is not None:
            self._recycle_task.cancel()  # and wait: it may be closing or starting a browser right now
            await asyncio.gather(self._recycle_task, return_exceptions=True)
        if self._chromium is not None:
            await self._chromium.close()
        self._chromium = self._playwright = None

    def is_connected(self) -> bool:
        """Chromium is up (or being restarted after a crash or recycle, which the next render awaits)."""
        return self._browser is not None and (self._browser.is_connected() or not self._open_gate.is_set())

    @property
    def _browser(self) -> Browser | None:
        """Playwright's Browser over the current Chromium."""
        return self._chromium.browser if self._chromium is not None else None

    @property
    def process_id(self) -> int | None:
        """The process id of the Chromium this instance started (its main process), if running."""
        return self._chromium.pid if self._chromium is not None else None

    async def browser_pid(self) -> int | None:
        """The browser's process id, as Chromium itself reports it (crash tests, diagnostics)."""
        await self._open_gate.wait()  # not in the middle of a recycle or restart
        if self._browser is None or not self._browser.is_connected():
            return None
        info = await ask_browser(self._browser, "SystemInfo.getProcessInfo")
        return next((p["id"] for p in info["processInfo"] if p["type"] == "browser"), None)

    async def render(self, html: str, options: RenderOptions, *, asset_root: Path | None = None) -> RenderResult:
        """Render one document. Raises RowError subclasses for row-level failures."""
        started = time.perf_counter()
        for attempt in (1, 2):
            slot = await self._acquire()
            generation = self._generation
            try:
                data, size = await self._render_on(slot, html, options, asset_root)
                break
            except RenderCrashError:
                await self._recover(slot, generation)
                if attempt == 2:
                    raise
                log.warning("render crashed; retrying the row once on a fresh page")
            finally:
                await self._release(slot)
        if options.format is OutputFormat.PNG and self.settings.png_compress_level > 0:
            data = await asyncio.to_thread(recompress_png, data, self.settings.png_compress_level)
        width, height = size
        result = RenderResult(
            data=data,
            format=options.format,
            width_px=width,
            height_px=height,
            render_ms=(time.perf_counter() - started) * 1000,
        )
        check_not_empty(result)
        return result

    async def _render_on(
        self, slot: PageSlot, html: str, options: RenderOptions, asset_root: Path | None
    ) -> tuple[bytes, tuple[int, int]]:
        assert self._browser is not None
        geometry = geometry_for(options)
        if not slot.ready_for(self._generation, geometry):
            await self._open_page(slot, geometry)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self._unless_browser_dies(self._steps(slot, html, options, asset_root), slot)
        except TimeoutError:
            await slot.close()
            raise RenderTimeoutError(
                f"render did not finish within {self.settings.timeout_s:g} s "
                "(setting PRESSRUN_RENDER__TIMEOUT_S)",
                timeout_s=self.settings.timeout_s,
            ) from None
        except PlaywrightError as exc:
            first_line = (exc.message or str(exc)).splitlines()[0]
            raise RenderCrashError(f"Chromium failed while rendering: {first_line}") from exc

    async def _open_page(self, slot: PageSlot, geometry: Geometry) -> None:
        assert self._chromium is not None
        try:
            # Opening a page is the pool's cost, not the row's: it has its own budget, so a short
            # render.timeout_s cannot fail every row on a busy machine.
            async with asyncio.timeout(PAGE_OPEN_TIMEOUT_S):
                await self._unless_browser_dies(slot.ensure(self._chromium, self._generation, geometry, self._frame_lock))
                self.frame_control = slot.frame_control
        except TimeoutError:
            await slot.close()
            raise RenderCrashError(f"Chromium did not open a page within {PAGE_OPEN_TIMEOUT_S} s") from None
        except PlaywrightError as exc:
            raise RenderCrashError(f"Chromium failed to open a page: {exc.message.splitlines()[0]}") from exc

    async def _steps(
        self, slot: PageSlot, html: str, options: RenderOptions, asset_root: Path | None
    ) -> tuple[bytes, tuple[int, int]]:
        await slot.load(html, asset_root)
        if options.format is OutputFormat.PDF:
            return await slot.pdf(options), options.output_size_px
        return await slot.screenshot(options)

    async def _unless_browser_dies(self, work: Coroutine[Any, Any, Any], slot: PageSlot | None = None) -> Any:
        """Await ``work``, but give up at once if the browser disconnects or ``slot``'s page crashes:
        a Playwright call in flight at that moment may never settle (a killed renderer process
        otherwise held the row until its timeout)."""
        watched = [self._disconnected.wait()]
        if slot is not None:
            watched.append(slot.crash_event.wait())
        work_task = asyncio.ensure_future(work)
        watch_tasks = [asyncio.ensure_future(waiter) for waiter in watched]
        try:
            await asyncio.wait({work_task, *watch_tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in watch_tasks:
                task.cancel()
            if not work_task.done():
                work_task.cancel()
                # Wait for it to unwind without taking its outcome; a cancel of our own still
                # propagates (suppressing BaseException here swallowed it).
                await asyncio.wait({work_task})
        if work_task.cancelled():
            if slot is not None and slot.crash_event.is_set():
                raise RenderCrashError("the page crashed while rendering this row (its renderer process died)")
            raise RenderCrashError("Chromium exited while rendering this row")
        return work_task.result()

    async def _acquire(self) -> PageSlot:
        while True:
            await self._open_gate.wait()
            slot = await self._free.get()
            if self._open_gate.is_set():
                self._in_flight += 1
                return slot
            self._free.put_nowait(slot)  # a recycle began while we waited for a page

    async def _release(self, slot: PageSlot) -> None:
        self._free.put_nowait(slot)
        async with self._state:
            self._in_flight -= 1
            self._renders_since_launch += 1
            self.rendered += 1
            self._state.notify_all()
            due = self._renders_since_launch >= self.settings.recycle_after
            if due and self._open_gate.is_set():
                self._open_gate.clear()
                self._recycle_task = asyncio.create_task(self._recycle())

    async def _recycle(self) -> None:
        async with self._state:
            await self._state.wait_for(lambda: self._in_flight == 0)
        try:
            await self._restart_browser("recycle")
        finally:
            self._open_gate.set()

    async def _recover(self, slot: PageSlot, generation: int) -> None:
        """After a crash: replace just the page if the browser lives, else restart the browser once."""
        await slot.close()
        if await self._browser_answers():
            return
        async with self._restart_lock:
            if self._generation == generation:  # nobody restarted it yet
                await self._restart_browser("crash")

    async def _browser_answers(self) -> bool:
        """Whether the browser is alive. A page's commands can fail before Playwright has noticed
        that the whole browser died, so ask the browser itself rather than trust is_connected()."""
        browser = self._browser
        if browser is None or not browser.is_connected():
            return False
        try:
            async with asyncio.timeout(BROWSER_PING_TIMEOUT_S):
                await ask_browser(browser, "Browser.getVersion")
        except (PlaywrightError, TimeoutError):
            return False
        return True

    async def _launch(self) -> None:
        assert self._playwright is not None
        chromium = await launch_chromium(self._playwright, self.settings.chromium_path)
        disconnected = asyncio.Event()
        chromium.browser.on("disconnected", lambda _browser: disconnected.set())
        self._chromium, self._disconnected = chromium, disconnected

    async def _restart_browser(self, reason: str) -> None:
        assert self._playwright is not None
        old = self._chromium
        log.info("restarting Chromium (%s) after %d renders", reason, self._renders_since_launch)
        if old is not None:
            await old.close()
        await self._launch()
        self._generation += 1
        self._renders_since_launch = 0
        self.restarts += 1


async def ask_browser(browser: Browser, method: str) -> dict[str, Any]:
    """One command on a browser-level CDP session of its own, detached afterwards."""
    session = await browser.new_browser_cdp_session()
    try:
        return await session.send(method)
    finally:
        with contextlib.suppress(PlaywrightError):
            await session.detach()


def geometry_for(options: RenderOptions) -> Geometry:
    """The viewport a render needs: the image size, or for PDFs the page size at 96 px per inch."""
    if options.format is OutputFormat.PDF:
        width_in, height_in = options.pdf.page_inches(options.width_px, options.height_px)
        return Geometry(round(width_in * 96), round(height_in * 96), 1.0, False)
    return Geometry(options.width_px, options.height_px, options.scale, options.transparent)


def check_not_empty(result: RenderResult) -> None:
    """An empty capture is a failed row, never a 0-byte file counted as rendered (Chromium answers
    with no data, not an error, for an image its encoder cannot hold)."""
    if not result.data:
        width, height = result.width_px, result.height_px
        raise EmptyOutputError(
            f"Chromium returned an empty {result.format.value} for a {width}×{height} px capture;"
            " a smaller size or another format may work",
            format=result.format.value,
            width=width,
            height=height,
        )
