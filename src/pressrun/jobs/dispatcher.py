"""The embedded dispatcher: feeds queued batch items to the render pool, records every outcome.

Durability comes from the item rows, not from memory: an item is claimed (``queued`` →
``rendering``) in one transaction and its outcome is recorded in another, only if it is still
``rendering``. At start-up every item left ``rendering`` by a crash is queued again, so kill -9 at
any moment loses nothing; re-rendering writes the same storage key, so no item is counted twice.

Each item renders through the item pipeline (pressrun.pipeline) of its batch: the pinned template
version with the options the batch was accepted with. The pipeline's error policy decides what a
failure means: an error of the row is recorded on the item (code, message and details); an error that
stops (Chromium cannot start, storage cannot be written) puts the item back in the queue and pauses
dispatch for ``UNAVAILABLE_BACKOFF_S``, so nothing accepted is lost to a full disk or a missing browser.

Fairness: each active batch may have at most its own ``concurrency`` items in flight, and free
capacity is shared between batches in turn, so a 50,000-item batch cannot starve a small one.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from pressrun.background import cancel_and_wait, nap
from pressrun.db import repo
from pressrun.errors import OutputError, OutputRefusedError
from pressrun.models import ItemStatus, OutputFormat
from pressrun.options import stored_batch_options
from pressrun.pipeline import Disposition, Failed, ItemPipeline, Rendered, disposition, failure
from pressrun.templating.prepared import TemplateCache

if TYPE_CHECKING:
    from pressrun.rendering.base import Renderer
    from pressrun.storage import Storage

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
UNAVAILABLE_BACKOFF_S = 5.0
FLUSH_WINDOW_S = 0.01  # outcomes that finish within this window are written in one transaction
FLUSH_MAX = 64
WRITE_ATTEMPTS = 6  # about a minute of retries before an outcome is left for the next start
WRITE_RETRY_BASE_S = 0.5


def output_key(batch_uid: str, index: int, fmt: OutputFormat) -> str:
    """Where an item's file is stored: the same key every time it is rendered, so a re-render replaces it."""
    return f"batches/{batch_uid}/{index}.{fmt.extension}"


def completed_outcome(key: str, outcome: Rendered) -> dict[str, Any]:
    result = outcome.result
    return {"status": ItemStatus.COMPLETED, "output_key": key, "width": result.width_px, "height": result.height_px,
            "bytes": len(result.data), "render_ms": round(result.render_ms), "file_name": outcome.file_name,
            **repo.NO_ERROR}


def failed_outcome(failed: Failed) -> dict[str, Any]:
    return {"status": ItemStatus.FAILED, **repo.error_columns(failed.error)}


# Errors that mean the storage takes nothing now (full, over quota, read-only, failing, not ours to
# write): dispatch stops and the item goes back. Any other OSError is about this one file.
STORAGE_DOWN = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})
# An item the storage refused this many times while it stored others is the item's fault, not the disk's.
MAX_STORE_ATTEMPTS = 5


def store_output(storage: Storage, key: str, data: bytes) -> None:
    """Write an item's file. A storage that takes nothing (a full disk) stops dispatch; one that refuses
    only this file fails the item."""
    try:
        storage.put(key, data)
    except OSError as exc:
        reason = f"cannot store {key} ({len(data):,} bytes): {exc.strerror or exc}"
        if exc.errno in STORAGE_DOWN:
            raise OutputError(reason, file=key) from exc
        raise OutputRefusedError(reason, file=key) from exc


BatchFinished = Callable[[int, str], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        db: Engine,
        storage: Storage,
        renderer: Renderer,
        templates: TemplateCache,
        on_batch_finished: BatchFinished | None = None,
        recorder: repo.BatchEvents | None = None,
    ) -> None:
        self.db, self.storage, self.renderer, self.templates = db, storage, renderer, templates
        self.on_batch_finished = on_batch_finished
        self.recorder = recorder  # webhook events, written in the transaction that records the outcome
        # Twice the pages: templating and storage writes overlap with rendering.
        self.capacity = renderer.concurrency * 2
        self.in_flight: dict[int, int] = defaultdict(int)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[int, Any] = {}  # the immutable fields of batches with items in flight
        self._pipelines: dict[int, ItemPipeline] = {}  # and the pipeline each renders through
        self._paused_until = 0.0
        self.pause_s = UNAVAILABLE_BACKOFF_S  # how long dispatch waits after an error that stops it
        self._stops = 0  # how many times it did
        self._stored = 0  # items stored so far, and when storage first refused an item (by item id)
        self._refusals: dict[int, int] = {}
        # Claim in chunks of about a page's worth, not one item per completion: fewer transactions.
        self.claim_chunk = max(1, renderer.concurrency)
        self._outcomes: list[tuple[int, int, dict[str, Any], asyncio.Future[str | None]]] = []
        self._outcome_ready = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a batch was accepted or retried): look for work now."""
        self._wake.set()

    async def run(self) -> None:
        requeued = await asyncio.to_thread(repo.requeue_abandoned, self.db, self.recorder)
        if requeued:
            log.info("re-queued %d items left in flight by an earlier run", requeued)
        loop = asyncio.get_running_loop()
        recorder = asyncio.create_task(self._record_outcomes(), name="dispatcher-outcomes")
        try:
            while True:
                claimed = 0
                in_flight = sum(self.in_flight.values())
                free = self.capacity - in_flight
                if loop.time() >= self._paused_until and (free >= self.claim_chunk or (free > 0 and in_flight == 0)):
                    try:
                        claimed = await self._claim_round()
                    except Exception:  # a database hiccup must not stop the dispatcher
                        log.exception("claiming work failed; retrying")
                        await asyncio.sleep(1.0)
                if not claimed:
                    await nap(self._wake, IDLE_POLL_S)
        finally:
            await cancel_and_wait([*self._tasks, recorder])

    async def drain(self) -> int:
        """Burst mode: render what is queued, until nothing is left or dispatch must pause (an error that
        stops: the items it met are back in the queue), and return how many items were claimed. For
        tests and one-shot runs; :meth:`run` is the loop a server keeps going."""
        stops = self._stops
        recorder = asyncio.create_task(self._record_outcomes(), name="dispatcher-outcomes")
        claimed = 0
        try:
            while self._stops == stops:
                claimed += await self._claim_round()
                if not self._tasks:
                    break
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await cancel_and_wait([recorder])
        return claimed

    async def _record_outcomes(self) -> None:
        """Write outcomes in groups: whatever finished within FLUSH_WINDOW_S goes in one transaction."""
        while True:
            await self._outcome_ready.wait()
            if len(self._outcomes) < FLUSH_MAX:
                await asyncio.sleep(FLUSH_WINDOW_S)
            group, self._outcomes = self._outcomes, []
            self._outcome_ready.clear()
            if not group:
                continue
            try:
                closed = await self._write_outcomes([(b, i, o) for b, i, o, _ in group])
            except Exception as exc:  # the items stay 'rendering'; the next start re-queues them
                log.exception("could not record %d outcomes", len(group))
                for *_, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finals = dict(closed)
            for batch_id, _, _, future in group:
                if not future.done():
                    future.set_result(finals.pop(batch_id, None))

    async def _write_outcomes(self, outcomes: list[tuple[int, int, dict[str, Any]]]) -> list[tuple[int, str]]:
        """finish_items, retried for about a minute: a locked or briefly unreachable database must not
        leave finished items 'rendering' until the next start."""
        for attempt in range(1, WRITE_ATTEMPTS):
            try:
                return await asyncio.to_thread(repo.finish_items, self.db, outcomes, self.recorder)
            except Exception as exc:
                log.warning("recording %d outcomes failed (%s); retrying", len(outcomes), exc)
                await asyncio.sleep(min(30.0, WRITE_RETRY_BASE_S * 2**attempt))
        return await asyncio.to_thread(repo.finish_items, self.db, outcomes, self.recorder)

    async def _record(self, batch_id: int, item_id: int, outcome: dict[str, Any]) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((batch_id, item_id, outcome, future))
        self._outcome_ready.set()
        return await future

    async def _claim_round(self) -> int:
        active = await asyncio.to_thread(repo.active_batches, self.db)
        free = self.capacity - sum(self.in_flight.values())
        claimed = 0
        wanting = [b for b in active if self.in_flight[b.id] < b.concurrency]
        while free > 0 and wanting:
            share = max(1, free // len(wanting))
            still_wanting = []
            for batch in wanting:
                want = min(share, batch.concurrency - self.in_flight[batch.id], free)
                if want <= 0:
                    continue
                rows = await asyncio.to_thread(repo.claim_items, self.db, batch.id, want)
                if rows and batch.id not in self._batches:
                    self._batches[batch.id] = await asyncio.to_thread(repo.batch_by_id, self.db, batch.id)
                for item in rows:
                    self._start(batch.id, item)
                claimed += len(rows)
                free -= len(rows)
                if len(rows) == want and self.in_flight[batch.id] < batch.concurrency:
                    still_wanting.append(batch)
            wanting = still_wanting
        return claimed

    def _start(self, batch_id: int, item: Any) -> None:
        self.in_flight[batch_id] += 1
        task = asyncio.create_task(self._process(batch_id, item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, batch_id: int, item: Any) -> None:
        try:
            outcome = await self._render(self._batches[batch_id], item)
            if outcome is None:  # the renderer is unavailable: not the row's fault, back to the queue
                final = await asyncio.to_thread(repo.release_item, self.db, batch_id, item.id, self.recorder)
                if final is not None and self.on_batch_finished is not None:
                    await self.on_batch_finished(batch_id, final)
                return
            final = await self._record(batch_id, item.id, outcome)
            if final is not None and self.on_batch_finished is not None:
                await self.on_batch_finished(batch_id, final)
        except asyncio.CancelledError:
            raise
        except Exception:  # the item stays 'rendering' and is re-queued at the next start
            log.exception("recording the outcome of item %d failed", item.id)
        finally:
            self.in_flight[batch_id] -= 1
            if self.in_flight[batch_id] <= 0:
                self.in_flight.pop(batch_id, None)
                self._batches.pop(batch_id, None)
                self._pipelines.pop(batch_id, None)
            self._wake.set()

    async def _render(self, batch: Any, item: Any) -> dict[str, Any] | None:
        """The item's outcome as it is recorded, or None when dispatch must stop for a while (Chromium
        is unavailable, storage cannot be written): not the row's fault, so it goes back to the queue."""
        try:
            pipeline = await self._pipeline(batch)
            outcome = await pipeline.run(json.loads(item.variables))
            if isinstance(outcome, Failed):
                return failed_outcome(outcome)
            key = output_key(batch.uid, item.idx, pipeline.options.format)
            await asyncio.to_thread(store_output, self.storage, key, outcome.result.data)
            self._stored += 1
            self._refusals.pop(item.id, None)
            return completed_outcome(key, outcome)
        except Exception as exc:
            if isinstance(exc, OutputError) and self._refused_for_itself(item):
                return failed_outcome(Failed(exc))
            if disposition(exc) is Disposition.STOP:
                log.error("%s; pausing for %.1f s", exc, self.pause_s)
                self._paused_until = asyncio.get_running_loop().time() + self.pause_s
                self._stops += 1
                return None
            return failed_outcome(failure(exc))  # the template version is missing, a bad stored option…

    def _refused_for_itself(self, item: Any) -> bool:
        """Whether storage keeps refusing this item while it takes others: then the item fails, rather
        than coming back first in the queue and pausing dispatch for everyone forever. A storage that
        takes nothing (a full disk) stores no other item meanwhile, so its items wait, however long."""
        first = self._refusals.setdefault(item.id, self._stored)
        if self._stored > first and item.attempts >= MAX_STORE_ATTEMPTS:
            del self._refusals[item.id]
            return True
        return False

    async def _pipeline(self, batch: Any) -> ItemPipeline:
        """The batch's pipeline: its pinned template version with the options it was accepted with."""
        pipeline = self._pipelines.get(batch.id)
        if pipeline is None:
            template = await asyncio.to_thread(self.templates.get, batch.template_id, batch.template_version)
            filename = await asyncio.to_thread(self.templates.filename_pattern, batch.filename) if batch.filename else None
            pipeline = ItemPipeline(template, stored_batch_options(batch, template.defaults.pdf), self.renderer,
                                    locale=batch.locale, filename=filename)
            self._pipelines[batch.id] = pipeline
        return pipeline
