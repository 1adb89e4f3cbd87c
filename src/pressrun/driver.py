"""Playwright's driver (the Node process Playwright's Python API talks to): its compile cache, and
starting it before the rest of pressrun is imported.

Kept apart from ``pressrun.rendering`` on purpose: importing this module costs only Playwright's own
Python package, so a command can start the driver first and import everything else (pydantic,
Jinja, rich, the renderer: about 0.3 s of Python) while Node boots beside it on another core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from playwright.async_api import Playwright, async_playwright

T = TypeVar("T")
# Loop turns until Playwright has spawned the driver; from then on it boots on its own.
SPAWN_TURNS = 3


def use_node_compile_cache() -> None:
    """Let Node cache the compiled code of Playwright's driver (NODE_COMPILE_CACHE, Node 22.1+): its
    start-up then takes about 0.2 s instead of 0.3 s, on every run. The driver inherits this process's
    environment; a value the operator set is kept, and Node ignores a cache folder it cannot write."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("NODE_COMPILE_CACHE", os.path.join(cache_home, "pressrun", "node-compile-cache"))


async def start_playwright() -> Playwright:
    """Start Playwright's driver, with Node's compile cache on."""
    use_node_compile_cache()
    return await async_playwright().start()


class PrestartedDriver:
    """An event loop (``asyncio.Runner``) on which Playwright's driver is already starting.

    ``with PrestartedDriver() as driver:`` then import and prepare what the command needs, and run its
    coroutine with ``driver.run(...)``, lending the driver to a renderer as ``driver.playwright``. The
    driver stays this object's: it is stopped on exit, whether or not a renderer used it.
    """

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._starting: asyncio.Task[Playwright] | None = None

    def __enter__(self) -> PrestartedDriver:
        try:
            self._starting = self._runner.get_loop().create_task(start_playwright())
            for _ in range(SPAWN_TURNS):
                self._runner.run(asyncio.sleep(0))
        except BaseException:
            self.__exit__(None, None, None)  # interrupted before the with block: clean up all the same
            raise
        return self

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    @property
    def playwright(self) -> Awaitable[Playwright]:
        """Playwright once its driver has started (await it; awaiting it again gives the same one).
        Shielded: a renderer cancelled while it waits (Ctrl-C) must not cancel the start itself,
        which this object still has to finish and stop."""
        assert self._starting is not None, "use PrestartedDriver as a context manager"
        return asyncio.shield(self._starting)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._starting is not None:
                self._runner.run(stop_when_started(self._starting))
        finally:
            self._starting = None
            self._runner.close()


async def stop_when_started(starting: asyncio.Task[Playwright]) -> None:
    # A driver that failed to start, or whose start was cancelled, has nothing to stop.
    with contextlib.suppress(Exception, asyncio.CancelledError):
        playwright = await starting
        await playwright.stop()
