"""Small pieces shared by pressrun's concurrent work (dispatcher, webhook sender, service, runner, routes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def nap(wake: asyncio.Event, seconds: float) -> None:
    """Sleep until ``wake`` is set or ``seconds`` pass, whichever comes first; ``wake`` is re-armed."""
    wake.clear()
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives in the
    # same turn as the wake-up (it returns the finished wait instead), and the caller's loop then
    # naps again with nobody left to cancel it. Service.stop() wakes and cancels together.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel the tasks and wait until they have finished, whatever they end with."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def gather_or_cancel(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """Every task's result, in order; when one fails (or the caller is cancelled), the others are
    cancelled and waited for before the error is raised: none of them goes on working unseen."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        await cancel_and_wait(tasks)
        raise
