"""The background loops' nap: woken early by its event, and always stoppable."""

from __future__ import annotations

import asyncio

from pressrun.background import cancel_and_wait, nap


async def napping_forever(wake: asyncio.Event) -> None:
    while True:
        await nap(wake, 10)


async def test_a_cancel_that_arrives_with_a_wake_up_is_not_lost():
    """Service.stop() wakes the loops and cancels them in one go. With asyncio.wait_for (Python 3.11)
    the nap returned the finished wait and dropped the cancel: the loop napped again and stop()
    waited for it forever (the API tests' teardown hang)."""
    wake = asyncio.Event()
    task = asyncio.create_task(napping_forever(wake))
    await asyncio.sleep(0.01)  # inside the nap
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_a_nap_ends_when_woken_and_when_its_time_is_up():
    wake = asyncio.Event()
    napping = asyncio.create_task(nap(wake, 10))
    await asyncio.sleep(0.01)
    wake.set()
    await asyncio.wait_for(napping, 2)  # long before its 10 s
    started = asyncio.get_running_loop().time()
    await nap(wake, 0.05)
    assert asyncio.get_running_loop().time() - started >= 0.05


async def test_cancel_and_wait_stops_napping_loops():
    wake = asyncio.Event()
    tasks = [asyncio.create_task(napping_forever(wake)) for _ in range(3)]
    await asyncio.sleep(0.01)
    wake.set()
    await asyncio.wait_for(cancel_and_wait(tasks), 2)
    assert all(task.cancelled() for task in tasks)
