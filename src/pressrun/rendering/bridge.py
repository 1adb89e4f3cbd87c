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
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Coroutine
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
PROFILE_PREFIX = "pressrun-chromium-"
STDERR_TAIL_BYTES = 4096

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
    "AvoidCorsURLLoaderRestartOnRedirect,OptimizationHints,NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch",
    "--enable-features=CDPScreenshotNewSurface,SkipListAccountsWithoutGaiaCookies",
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
    "--unsafely-disable-devtools-self-xss-warnings",
    "--enable-unsafe-swiftshader",
    "--disable-stack-profiler",
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
            await asyncio.wait({self._pump})  # however it ended (a read error too): closing goes on
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
                elif message.startswith(b'{"method":"Inspector.targetCrashed"'):
                    # The page's renderer died: nothing sent on its sessions will be answered.
                    if crashed_session := json.loads(message).get("sessionId"):
                        self._fail_pending(crashed_session)
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


class StderrTail(asyncio.Protocol):
    """The last bytes Chromium wrote to stderr: its last words when a launch fails. Pages' console
    messages go there too (with JavaScript on, a busy page writes megabytes), so nothing more is kept."""

    def __init__(self) -> None:
        self.tail = bytearray()

    def data_received(self, data: bytes) -> None:
        self.tail += data
        del self.tail[:-STDERR_TAIL_BYTES]

    def last_words(self, lines: int = 3) -> str:
        text = self.tail.decode(errors="replace")
        kept = [line.strip() for line in text.splitlines() if line.strip() and "dbus" not in line]
        return " | ".join(kept[-lines:])


class Chromium:
    """One Chromium process of pressrun's own, its pipe bridge, and Playwright's Browser over it."""

    def __init__(self, pid: int, profile: Path, bridge: CdpBridge, browser: Browser,
                 stderr: asyncio.BaseTransport) -> None:
        self.pid, self.profile, self.bridge, self.browser, self._stderr = pid, profile, bridge, browser, stderr

    @classmethod
    async def launch(cls, playwright: Playwright, executable: str, args: list[str]) -> Chromium:
        """Start Chromium and connect Playwright to it. Raises OSError (cannot start) or
        PlaywrightError (started, but never answered), with Chromium's own last words."""
        await asyncio.to_thread(sweep_stale_profiles)
        profile = Path(tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-"))
        argv = [executable, *PLAYWRIGHT_SWITCHES, *args, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                "--no-startup-window"]
        try:
            pid, (to_chromium, from_chromium, stderr_r) = spawn(executable, argv)
        except OSError:
            shutil.rmtree(profile, ignore_errors=True)
            raise
        loop = asyncio.get_running_loop()
        tail = StderrTail()
        bridge: CdpBridge | None = None
        stderr: asyncio.BaseTransport | None = None
        unwrapped = [to_chromium, from_chromium, stderr_r]  # descriptors not yet owned by a transport
        connecting: asyncio.Future[Browser] | None = None
        try:
            stderr, _ = await loop.connect_read_pipe(lambda: tail, os.fdopen(unwrapped.pop(), "rb", 0))
            reader = asyncio.StreamReader(limit=MAX_MESSAGE_BYTES)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(unwrapped.pop(), "rb", 0))
            writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(unwrapped.pop(), "wb", 0))
            bridge = CdpBridge(reader, writer)  # type: ignore[arg-type]
            url = await bridge.serve()
            connecting = asyncio.ensure_future(playwright.chromium.connect_over_cdp(url, timeout=CONNECT_TIMEOUT_S * 1000))
            exited = asyncio.ensure_future(bridge.closed.wait())
            try:
                await asyncio.wait({connecting, exited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                exited.cancel()
            if not connecting.done():  # Chromium exited as it started: say so now, not at the timeout
                raise PlaywrightError("Chromium exited as it started")
            browser = connecting.result()
        except BaseException as exc:
            if connecting is not None and not connecting.done():
                connecting.cancel()
                await asyncio.wait({connecting})
            for fd in unwrapped:
                os.close(fd)
            await uncancellable(teardown(pid, profile, bridge, stderr))
            if isinstance(exc, PlaywrightError):
                last_words = tail.last_words()
                raise PlaywrightError(f"{exc.message.splitlines()[0]}{f' ({last_words})' if last_words else ''}") from exc
            raise
        return cls(pid, profile, bridge, browser, stderr)

    async def close(self) -> None:
        """Stop Chromium and remove its profile; safe to call again, and finished even if the caller
        is cancelled meanwhile."""
        try:
            with contextlib.suppress(PlaywrightError, TimeoutError):  # a browser that died has nothing to close
                async with asyncio.timeout(EXIT_GRACE_S):
                    await self.browser.close()
        finally:
            await uncancellable(teardown(self.pid, self.profile, self.bridge, self._stderr))


def spawn(executable: str, argv: list[str]) -> tuple[int, tuple[int, int, int]]:
    """Start Chromium with its DevTools pipe on descriptors 3 and 4 and its stderr on a pipe of ours.
    Returns its pid and our ends: (write to it, read from it, read its stderr). It inherits nothing
    else of this process (a supervisor's or make's inheritable descriptors are closed in it)."""
    pipes = [os.pipe() for _ in range(3)]
    ours = (pipes[0][1], pipes[1][0], pipes[2][0])
    theirs = []
    try:
        # Chromium's ends go above 4 first, so that moving one onto 2, 3 or 4 cannot overwrite another.
        for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
            theirs.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
            os.close(fd)
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, theirs[0], 3),
            (os.POSIX_SPAWN_DUP2, theirs[1], 4),
            (os.POSIX_SPAWN_DUP2, theirs[2], 2),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        ]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inheritable_descriptors() if fd > 4]
        pid = os.posix_spawn(executable, argv, os.environ, file_actions=actions,
                             setpgroup=0)  # its own process group: a Ctrl-C in the terminal is pressrun's
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:  # its copies are all Chromium needs
            os.close(fd)
    return pid, ours


def inheritable_descriptors() -> list[int]:
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    found = []
    for name in os.listdir(folder):
        with contextlib.suppress(OSError, ValueError):  # the listing's own descriptor is gone by now
            if os.get_inheritable(int(name)):
                found.append(int(name))
    return found


async def teardown(pid: int, profile: Path, bridge: CdpBridge | None, stderr: asyncio.BaseTransport | None) -> None:
    if bridge is not None:
        await bridge.close()
    await stop_process(pid)
    if stderr is not None:
        stderr.close()
    await asyncio.to_thread(shutil.rmtree, profile, True)


async def uncancellable(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run clean-up to its end even if the caller is cancelled meanwhile (the cancel is then re-raised):
    a Ctrl-C during a close must not leave a Chromium running or its profile behind."""
    task = asyncio.ensure_future(coroutine)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


async def stop_process(pid: int) -> None:
    """Wait for ``pid`` to exit (its pipe is closed), killing it past the grace period; kill what is
    left of its process group (the zygote and renderers exit with it, but a straggler must not stay)
    while it is unreaped, when its group cannot have been reused; then reap it."""
    loop = asyncio.get_running_loop()
    if not hasattr(os, "waitid"):  # macOS before Python 3.13: reap in a thread; stragglers die with it
        reaped = asyncio.ensure_future(asyncio.to_thread(reap, pid))
        if not (await asyncio.wait({reaped}, timeout=EXIT_GRACE_S))[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await reaped
        return
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
    reap(pid)


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def sweep_stale_profiles() -> None:
    """Remove the profiles of pressrun processes that ended without cleaning up (killed, out of
    memory): each profile folder is named after the pid of the pressrun that made it."""
    folder = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{PROFILE_PREFIX}*-*"):
            owner = path.name[len(PROFILE_PREFIX):].split("-", 1)[0]
            if not owner.isdigit() or int(owner) == os.getpid():
                continue
            try:
                if path.stat().st_uid != os.getuid():
                    continue
                os.kill(int(owner), 0)
            except ProcessLookupError:
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue
