"""Chromium launched by pressrun itself, its DevTools pipe held in this process.

Playwright's own launch puts its Node driver between pressrun and Chromium: every CDP command a row
needs (put the document, draw the frame and take its capture) crossed two pipes and two JSON codecs,
and the driver's share was about an eighth of a render's CPU. Here pressrun starts Chromium with
``--remote-debugging-pipe`` on pipes of its own and keeps both ends:

- the per-row commands (:meth:`CdpBridge.send`) go straight down the pipe, on the CDP session
  Playwright opened for the page, with ids from a range Playwright never reaches; their replies
  are taken off the pipe before anything else sees them;
- everything else is relayed, byte for byte, to Playwright, which drives Chromium as usual (contexts,
  pages, routing, events) through ``connect_over_cdp`` to a WebSocket this process serves on
  loopback for exactly one connection: the path holds a 192-bit secret, and the listening socket
  is closed as soon as Playwright is connected, so no other process can ever reach the browser.

Chromium exits by itself when the pipe closes, so it never outlives pressrun (even one that is
killed); :meth:`Chromium.close` also stops it and removes its profile folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import websockets
from playwright.async_api import Browser, Playwright
from playwright.async_api import Error as PlaywrightError

log = logging.getLogger(__name__)

# Ids of pressrun's own commands. Playwright numbers its commands from 1 on the same connection.
DIRECT_ID_BASE = 1 << 30
# Largest message read from Chromium: a capture at scale 4 or a long PDF, base64-encoded.
MAX_MESSAGE_BYTES = 1 << 31
# How long Chromium gets to exit once its pipe is closed, before it is killed.
EXIT_GRACE_S = 5.0
CONNECT_TIMEOUT_S = 30.0
CLOSED = "Target page, context or browser has been closed"

# The switches Playwright's own launch passes to Chromium (playwright-core's chromiumSwitches and
# its headless defaults), so pages behave as they do under Playwright: sRGB colours, no background
# throttling of unfocused pages, no first-run or component traffic.
PLAYWRIGHT_SWITCHES = [
    "--disable-field-trial-config",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-back-forward-cache",
    "--disable-breakpad",
    "--disable-component-extensions-with-background-pages",
    "--disable-component-update",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-features=AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,ThirdPartyStoragePartitioning,"
    "AvoidCorsURLLoaderRestartOnRedirect,OptimizationHints,NetworkTimeServiceQuerying,PreconnectToSearch",
    "--enable-features=CDPScreenshotNewSurface",
    "--allow-pre-commit-input",
    "--disable-hang-monitor",
    "--disable-ipc-flooding-protection",
    "--disable-popup-blocking",
    "--disable-prompt-on-repost",
    "--disable-renderer-backgrounding",
    "--force-color-profile=srgb",
    "--metrics-recording-only",
    "--no-first-run",
    "--password-store=basic",
    "--use-mock-keychain",
    "--no-service-autorun",
    "--disable-search-engine-choice-screen",
    "--disable-infobars",
    "--disable-sync",
    "--headless",
    "--hide-scrollbars",
    "--mute-audio",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4",
]


class CdpBridge:
    """The DevTools pipe of one Chromium: pressrun's own commands, and a relay for Playwright."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.WriteTransport) -> None:
        self._reader, self._writer = reader, writer
        self._next_id = DIRECT_ID_BASE
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str | None, str]] = {}
        self._attaching: dict[int, str] = {}  # Playwright's Target.attachToTarget: command id -> target id
        self._sessions: dict[str, str] = {}  # target id -> session Playwright attached to it explicitly
        self._client: Any = None  # Playwright's WebSocket connection
        self._server: Any = None
        self._token = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.direct_commands = 0  # sent by pressrun straight down the pipe
        self.relayed_commands = 0  # sent by Playwright through the relay (diagnostics, tests)
        self.closed = asyncio.Event()  # the pipe closed: Chromium exited (or is exiting)
        self._pump: asyncio.Task[None] | None = None

    async def serve(self) -> str:
        """Start relaying; returns the one-time WebSocket URL for Playwright's connect_over_cdp."""
        self._server = await websockets.serve(
            self._accept, "127.0.0.1", 0, max_size=None, compression=None, write_limit=1 << 24,
            ping_interval=None,  # Playwright's side does not answer pings while a long command runs
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._pump = asyncio.create_task(self._pump_from_chromium())
        return f"ws://127.0.0.1:{self.port}/devtools/browser/{self._token}"

    async def send(self, session_id: str | None, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One command on ``session_id`` (None: the browser), answered straight from the pipe.
        Raises Playwright's Error, worded like Playwright's, so callers treat both alike."""
        if self.closed.is_set():
            raise PlaywrightError(f"{method}: {CLOSED}")
        command_id = self._next_id
        self._next_id += 1
        self.direct_commands += 1
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (reply, session_id, method)
        try:
            self._writer.write(json.dumps(message).encode() + b"\0")
            answer = await reply
        finally:
            self._pending.pop(command_id, None)
        if "error" in answer:
            raise PlaywrightError(f"Protocol error ({method}): {answer['error'].get('message', answer['error'])}")
        return answer.get("result", {})

    def session_for(self, target_id: str) -> str | None:
        """The CDP session Playwright last attached to ``target_id`` on request (new_cdp_session)."""
        return self._sessions.get(target_id)

    async def close(self) -> None:
        """Stop relaying and close the pipe (Chromium exits when it sees the pipe close)."""
        if self._server is not None:
            self._server.close()
        if self._client is not None:
            with contextlib.suppress(Exception):  # not CancelledError: asyncio.timeout passes it on
                async with asyncio.timeout(1):
                    await self._client.close()
        self._writer.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._fail_pending(None)

    # --- the relay -----------------------------------------------------------------------------

    async def _accept(self, connection: Any) -> None:
        if connection.request.path != f"/devtools/browser/{self._token}" or self._client is not None:
            await connection.close(1008, "not for you")
            return
        if self.closed.is_set():
            await connection.close(1011, "Chromium has exited")
            return
        self._client = connection
        # One client, ever: nothing else may connect to this browser, with or without the secret.
        self._server.close(close_connections=False)
        try:
            async for message in connection:
                data = message.encode() if isinstance(message, str) else message
                self.relayed_commands += 1
                if b'"Target.attachToTarget"' in data:
                    self._note_attach_request(data)
                self._writer.write(data + b"\0")
        except websockets.ConnectionClosed:
            pass

    async def _pump_from_chromium(self) -> None:
        try:
            while True:
                try:
                    data = await self._reader.readuntil(b"\0")
                except asyncio.IncompleteReadError:
                    break
                message = data[:-1]
                if self._take_reply(message):
                    continue
                if message.startswith(b'{"method":"Target.detachedFromTarget"'):
                    self._fail_pending(json.loads(message)["params"].get("sessionId"))
                if self._client is not None:
                    try:
                        await self._client.send(message, text=True)
                    except websockets.ConnectionClosed:
                        pass
        finally:
            self.closed.set()
            self._fail_pending(None)
            if self._client is not None:  # Playwright sees the browser disconnect
                with contextlib.suppress(Exception):
                    await self._client.close()

    def _take_reply(self, message: bytes) -> bool:
        """Settle one of our commands if ``message`` answers it; note Playwright's attach replies."""
        if not message.startswith(b'{"id":'):
            return False
        end = 6
        while end < len(message) and message[end : end + 1].isdigit():
            end += 1
        if end == 6:
            return False
        command_id = int(message[6:end])
        if command_id in self._attaching:
            target_id = self._attaching.pop(command_id)
            if session_id := json.loads(message).get("result", {}).get("sessionId"):
                self._sessions[target_id] = session_id
            return False
        if command_id < DIRECT_ID_BASE:
            return False
        pending = self._pending.get(command_id)
        if pending is not None and not pending[0].done():
            pending[0].set_result(json.loads(message))
        return True

    def _note_attach_request(self, data: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            command = json.loads(data)
            if command.get("method") == "Target.attachToTarget":
                self._attaching[command["id"]] = command["params"]["targetId"]

    def _fail_pending(self, session_id: str | None) -> None:
        """Fail our commands waiting on ``session_id`` (closed or crashed), or all (None: pipe closed)."""
        for reply, command_session, method in list(self._pending.values()):
            if (session_id is None or command_session == session_id) and not reply.done():
                reply.set_exception(PlaywrightError(f"Protocol error ({method}): {CLOSED}"))


class Chromium:
    """One Chromium process of pressrun's own, its pipe bridge, and Playwright's Browser over it."""

    def __init__(self, pid: int, profile: Path, bridge: CdpBridge, browser: Browser) -> None:
        self.pid, self.profile, self.bridge, self.browser = pid, profile, bridge, browser

    @classmethod
    async def launch(cls, playwright: Playwright, executable: str, args: list[str]) -> Chromium:
        """Start Chromium and connect Playwright to it. Raises OSError (cannot start) or
        PlaywrightError (started, but never answered), with Chromium's own last words."""
        profile = Path(tempfile.mkdtemp(prefix="pressrun-chromium-"))
        to_chromium_r, to_chromium_w = os.pipe()
        from_chromium_r, from_chromium_w = os.pipe()
        try:
            pid = os.posix_spawn(
                executable,
                [executable, *PLAYWRIGHT_SWITCHES, *args, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                 "--no-startup-window"],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, to_chromium_r, 3),
                    (os.POSIX_SPAWN_DUP2, from_chromium_w, 4),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, str(profile / "stderr.log"), os.O_WRONLY | os.O_CREAT, 0o600),
                ],
                setpgroup=0,  # its own process group: a Ctrl-C in the terminal is pressrun's to handle
            )
        except OSError:
            os.close(to_chromium_w)
            os.close(from_chromium_r)
            shutil.rmtree(profile, ignore_errors=True)
            raise
        finally:
            os.close(to_chromium_r)  # Chromium's ends: its copies are all it needs
            os.close(from_chromium_w)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_MESSAGE_BYTES)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(from_chromium_r, "rb", 0))
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(to_chromium_w, "wb", 0))
        bridge = CdpBridge(reader, writer)  # type: ignore[arg-type]
        try:
            url = await bridge.serve()
            connecting = asyncio.ensure_future(playwright.chromium.connect_over_cdp(url, timeout=CONNECT_TIMEOUT_S * 1000))
            exited = asyncio.ensure_future(bridge.closed.wait())
            try:
                await asyncio.wait({connecting, exited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                exited.cancel()
            if not connecting.done():  # Chromium exited as it started: say so now, not at the timeout
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                raise PlaywrightError("Chromium exited as it started")
            browser = connecting.result()
        except BaseException as exc:
            await bridge.close()
            await stop_process(pid)
            last_words = read_tail(profile / "stderr.log")
            shutil.rmtree(profile, ignore_errors=True)
            if isinstance(exc, PlaywrightError):
                raise PlaywrightError(f"{exc.message.splitlines()[0]}{f' ({last_words})' if last_words else ''}") from exc
            raise
        return cls(pid, profile, bridge, browser)

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError, TimeoutError):  # a browser that died has nothing to close
            async with asyncio.timeout(EXIT_GRACE_S):
                await self.browser.close()
        await self.bridge.close()
        await stop_process(self.pid)
        await asyncio.to_thread(shutil.rmtree, self.profile, True)


async def stop_process(pid: int) -> None:
    """Wait for ``pid`` to exit (its pipe is closed), killing it past the grace period; then kill
    what is left of its process group (the zygote and renderers exit with it, but a straggler must
    not stay) before reaping it: until it is reaped its pid, and so its group, cannot be reused."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXIT_GRACE_S
    try:
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if loop.time() > deadline:
                log.warning("Chromium (pid %d) did not exit within %g s of its pipe closing: killed", pid, EXIT_GRACE_S)
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            await asyncio.sleep(0.02)
    except ChildProcessError:
        return  # reaped already
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def read_tail(path: Path, lines: int = 3) -> str:
    """The last meaningful lines Chromium wrote to stderr (for a launch that failed)."""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
        kept = [line.strip() for line in text.splitlines() if line.strip() and "dbus" not in line]
        return " | ".join(kept[-lines:])
    return ""
