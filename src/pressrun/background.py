"""Small pieces shared by pressrun's background loops (dispatcher, webhook sender, service)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def nap(wake: asyncio.Event, seconds: float) -> None:
    """Sleep until ``wake`` is set or ``seconds`` pass, whichever comes first; ``wake`` is re-armed."""
    wake.clear()
    try:
        await asyncio.wait_for(wake.wait(), seconds)
    except TimeoutError:
        pass


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel the tasks and wait until they have finished, whatever they end with."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
