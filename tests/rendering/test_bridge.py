"""pressrun starts Chromium itself and holds its DevTools pipe (rendering/bridge.py): the commands
every row sends go straight down the pipe, Playwright reaches the browser only through a one-time
loopback WebSocket, and Chromium never outlives pressrun."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import websockets

from pressrun.driver import start_playwright
from pressrun.errors import BrowserUnavailableError
from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.rendering.bridge import DIRECT_ID_BASE, PROFILE_PREFIX, CdpBridge
from pressrun.rendering.chromium import launch_chromium
from pressrun.rendering.page import DirectSession
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

OPTIONS = RenderOptions(format=OutputFormat.PNG, width_px=120, height_px=80)


@pytest.fixture
async def playwright():
    driver = await start_playwright()
    yield driver
    await driver.stop()


@pytest.fixture
async def chromium(playwright):
    launched = await launch_chromium(playwright, os.environ.get("PRESSRUN_CHROMIUM_PATH"))
    yield launched
    await launched.close()


async def page_session(chromium) -> DirectSession:
    context = await chromium.browser.new_context()
    page = await context.new_page()
    return await DirectSession.over(await context.new_cdp_session(page), chromium.bridge)


async def test_once_playwright_is_connected_nothing_else_can_reach_the_browser(chromium):
    assert chromium.bridge.port is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", chromium.bridge.port), timeout=2).close()


async def test_the_websocket_admits_only_its_secret_path_and_only_once():
    """The bridge alone, on pipes of the test's own (no Chromium needed to check who may connect)."""
    to_bridge_r, to_bridge_w = os.pipe()
    from_bridge_r, from_bridge_w = os.pipe()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(to_bridge_r, "rb", 0))
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(from_bridge_w, "wb", 0))
    bridge = CdpBridge(reader, writer)
    try:
        url = await bridge.serve()
        wrong = url.rsplit("/", 1)[0] + "/guess"
        async with websockets.connect(wrong) as intruder:
            with pytest.raises(websockets.ConnectionClosed) as refused:
                await intruder.recv()
            assert refused.value.rcvd.code == 1008
        async with websockets.connect(url) as client:
            await client.send('{"id":1,"method":"Browser.getVersion"}')
            relayed = await asyncio.wait_for(asyncio.to_thread(os.read, from_bridge_r, 100), 10)
            assert relayed == b'{"id":1,"method":"Browser.getVersion"}\0'  # relayed as is
            os.write(to_bridge_w, b'{"id":1,"result":{"product":"x"}}\0')
            assert await client.recv() == '{"id":1,"result":{"product":"x"}}'
            with pytest.raises(OSError):  # the listening socket closed at the first admitted client
                await websockets.connect(url, open_timeout=2)
    finally:
        await bridge.close()
        os.close(to_bridge_w)
        os.close(from_bridge_r)


async def test_rows_send_their_commands_straight_down_the_pipe():
    async with ChromiumRenderer(RenderSettings(concurrency=1, browsers=1)) as renderer:
        await renderer.render("<p>warm</p>", OPTIONS)
        bridge = renderer.instances[0]._chromium.bridge
        direct, relayed = bridge.direct_commands, bridge.relayed_commands
        for index in range(20):
            await renderer.render(f"<p>row {index}</p>", OPTIONS)
        # Each row puts its document and draws its frame over the pipe (at least 2 commands);
        # Playwright's driver relays next to nothing per row (it relayed every command before).
        assert bridge.direct_commands - direct >= 40
        assert bridge.relayed_commands - relayed < 20


async def test_an_error_reply_is_raised_with_chromiums_own_message(chromium):
    session = await page_session(chromium)
    with pytest.raises(Exception, match=r"Protocol error \(No\.suchMethod\): .*wasn't found"):
        await session.send("No.suchMethod")
    result = await session.send("Runtime.evaluate", {"expression": "6 * 7", "returnByValue": True})
    assert result["result"]["value"] == 42
    assert chromium.bridge.direct_commands >= 2 and chromium.bridge._next_id > DIRECT_ID_BASE


async def test_a_browser_that_dies_fails_the_commands_waiting_on_it_at_once(chromium):
    session = await page_session(chromium)
    never = asyncio.ensure_future(
        session.send("Runtime.evaluate", {"expression": "new Promise(() => {})", "awaitPromise": True})
    )
    await asyncio.sleep(0.2)
    assert not never.done()
    started = time.monotonic()
    os.kill(chromium.pid, signal.SIGKILL)
    with pytest.raises(Exception, match="has been closed"):
        await asyncio.wait_for(never, 10)
    assert time.monotonic() - started < 5
    await asyncio.wait_for(chromium.bridge.closed.wait(), 5)
    with pytest.raises(Exception, match="has been closed"):
        await session.send("Runtime.evaluate", {"expression": "1"})


async def test_close_stops_chromium_and_removes_its_profile(playwright):
    chromium = await launch_chromium(playwright, os.environ.get("PRESSRUN_CHROMIUM_PATH"))
    process = psutil.Process(chromium.pid)
    group = [p for p in psutil.process_iter(["pid"]) if _group_of(p) == chromium.pid]
    assert len(group) >= 2 and chromium.profile.is_dir()  # the browser and its helpers
    await chromium.close()
    assert not chromium.profile.exists()
    assert not process.is_running()  # exited and reaped: no zombie either
    assert not [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def test_chromium_does_not_outlive_a_killed_pressrun(tmp_path):
    script = textwrap.dedent(
        """
        import asyncio, sys
        from pressrun.models import OutputFormat, RenderOptions
        from pressrun.rendering import ChromiumRenderer
        from pressrun.settings import RenderSettings

        async def main():
            async with ChromiumRenderer(RenderSettings(concurrency=1, browsers=1)) as renderer:
                await renderer.render("<p>x</p>", RenderOptions(format=OutputFormat.PNG, width_px=50, height_px=50))
                print(renderer.instances[0].process_id, flush=True)
                await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        browser = psutil.Process(int(process.stdout.readline()))
        group = [p for p in psutil.process_iter(["pid"]) if _group_of(p) == browser.pid]
        process.kill()  # no clean-up runs: only the pipe closing tells Chromium
        process.wait(10)
        gone, alive = psutil.wait_procs(group, timeout=10)
        assert alive == [], f"Chromium processes outlived pressrun: {alive}"
    finally:
        process.kill()


async def test_a_chromium_that_exits_at_once_is_reported_quickly(playwright, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
    fake.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(BrowserUnavailableError, match="could not start Chromium") as caught:
        await launch_chromium(playwright, str(fake))
    assert str(fake) in caught.value.message and "cannot open display" in caught.value.message
    assert time.monotonic() - started < 10  # not the 30 s connect timeout


async def test_a_crashed_page_fails_the_commands_waiting_on_it_at_once(chromium):
    session = await page_session(chromium)
    never = asyncio.ensure_future(
        session.send("Runtime.evaluate", {"expression": "new Promise(() => {})", "awaitPromise": True})
    )
    await asyncio.sleep(0.2)
    renderers = [p for p in psutil.Process(chromium.pid).children(recursive=True) if "--type=renderer" in p.cmdline()]
    assert renderers
    for renderer in renderers:
        renderer.kill()
    with pytest.raises(Exception, match="has been closed"):
        await asyncio.wait_for(never, 5)  # Inspector.targetCrashed: not the page-open timeout


def open_descriptors(pid: int) -> list[str]:
    """What ``pid``'s descriptors point at; one it closes while they are listed is left out."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


async def test_chromium_inherits_no_descriptor_but_its_pipe(playwright):
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)  # as a supervisor's socket or make's jobserver pipe would be
    try:
        chromium = await launch_chromium(playwright, os.environ.get("PRESSRUN_CHROMIUM_PATH"))
        try:
            target = os.readlink(f"/proc/self/fd/{leaked_w}")
            assert target not in open_descriptors(chromium.pid)
        finally:
            await chromium.close()
    finally:
        os.close(leaked_r)
        os.close(leaked_w)


async def test_a_launch_cancelled_at_any_point_leaves_no_chromium_and_no_profile(playwright):
    before = {p.pid for p in psutil.Process().children()}
    profiles = set(Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}{os.getpid()}-*"))
    for turns in (1, 2, 3, 5, 8, 13, 40):
        launching = asyncio.ensure_future(launch_chromium(playwright, os.environ.get("PRESSRUN_CHROMIUM_PATH")))
        for _ in range(turns):
            await asyncio.sleep(0)
        launching.cancel()
        done, _ = await asyncio.wait({launching}, timeout=15)
        assert launching in done
        if not launching.cancelled() and launching.exception() is None:
            await launching.result().close()  # it had finished before the cancel
    left = [p for p in psutil.Process().children() if p.pid not in before]
    assert [p for p in left if "--remote-debugging-pipe" in " ".join(p.cmdline()) or p.status() == "zombie"] == []
    assert set(Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}{os.getpid()}-*")) == profiles


async def test_profiles_left_by_a_killed_pressrun_are_removed_at_the_next_launch(playwright):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{int(dead.stdout)}-"))
    (stale / "Default").mkdir()
    alive = Path(tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getppid()}-"))  # a live process's: kept
    try:
        chromium = await launch_chromium(playwright, os.environ.get("PRESSRUN_CHROMIUM_PATH"))
        await chromium.close()
        assert not stale.exists() and alive.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(alive, ignore_errors=True)


async def test_chromiums_stderr_is_kept_only_as_a_short_tail(chromium):
    """Console messages of a page go to Chromium's stderr: with JavaScript on a chatty page wrote
    megabytes into a file that lived until the next recycle."""
    context = await chromium.browser.new_context()
    page = await context.new_page()
    await page.evaluate("() => { for (let i = 0; i < 20000; i++) console.error('x'.repeat(200)); }")
    await asyncio.sleep(0.5)
    tail = chromium._stderr.get_protocol().tail
    assert b"x" * 100 in tail and len(tail) <= 4096  # the messages arrived; only the last 4 KB are kept
    assert sum(f.stat().st_size for f in chromium.profile.rglob("*") if f.is_file()) < 5_000_000
