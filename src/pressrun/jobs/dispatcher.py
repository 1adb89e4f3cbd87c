"""The embedded dispatcher: feeds queued batch items to the render pool, records every outcome.

Durability comes from the item rows, not from memory: an item is claimed (``queued`` →
``rendering``) in one transaction and its outcome is recorded in another, only if it is still
``rendering``. At start-up every item left ``rendering`` by a crash is queued again, so kill -9 at
any moment loses nothing; re-rendering writes the same storage key, so no item is counted twice.

Fairness: each active batch may have at most its own ``concurrency`` items in flight, and free
capacity is shared between batches in turn, so a 50,000-item batch cannot starve a small one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pressrun.background import cancel_and_wait, nap
from pressrun.data.types import ColumnType, apply_column_types, parse_column_types
from pressrun.db import repo
from pressrun.errors import BrowserUnavailableError, PressrunError, RowError
from pressrun.models import OutputFormat, PdfOptions, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.storage import LocalStorage
from pressrun.templating.bundle import build_document
from pressrun.templating.isolation import IsolatedEngine as TemplateEngine
from pressrun.templating.isolation import IsolatedTemplate as CompiledTemplate

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
UNAVAILABLE_BACKOFF_S = 5.0
FLUSH_WINDOW_S = 0.01  # outcomes that finish within this window are written in one transaction
FLUSH_MAX = 64
WRITE_ATTEMPTS = 6  # about a minute of retries before an outcome is left for the next start
WRITE_RETRY_BASE_S = 0.5


@dataclass(frozen=True)
class PreparedTemplate:
    uid: str
    template: CompiledTemplate
    css: str
    asset_root: Path
    pdf: PdfOptions
    column_types: dict[str, ColumnType]

    def row(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Apply the template's column types (CSV strings → numbers, dates…); raises the row's error."""
        if self.column_types:
            error = apply_column_types(raw, self.column_types)
            if error is not None:
                raise error
        return raw


class TemplateCache:
    """Compiled template versions, by (template id, version); a version never changes once written."""

    def __init__(self, db: Engine, engine: TemplateEngine, storage: LocalStorage, size: int = 64) -> None:
        self.db, self.engine, self.storage, self.size = db, engine, storage, size
        self._cache: dict[tuple[int, int], PreparedTemplate] = {}
        self._patterns: dict[str, CompiledTemplate] = {}
        self._lock = threading.Lock()  # called from worker threads (API and dispatcher)

    def get(self, template_id: int, version: int) -> PreparedTemplate:
        with self._lock:
            return self._get(template_id, version)

    def _get(self, template_id: int, version: int) -> PreparedTemplate:
        key = (template_id, version)
        found = self._cache.get(key)
        if found is None:
            row = repo.template_version_by_id(self.db, template_id, version)
            if row is None:
                raise PressrunError(f"version {version} of template {template_id} is missing")
            found = PreparedTemplate(
                uid=row.uid,
                template=self.engine.compile(row.html, name="template.html"),
                css=row.css,
                asset_root=asset_root(self.storage, row.uid),
                pdf=pdf_options(row.pdf),
                column_types=parse_column_types(row.column_types or {}, file="columnTypes"),
            )
            if len(self._cache) >= self.size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = found
        return found

    def filename_pattern(self, pattern: str) -> CompiledTemplate:
        with self._lock:
            return self._filename_pattern(pattern)

    def _filename_pattern(self, pattern: str) -> CompiledTemplate:
        compiled = self._patterns.get(pattern)
        if compiled is None:
            if len(self._patterns) >= self.size:
                self._patterns.pop(next(iter(self._patterns)))
            compiled = self._patterns[pattern] = self.engine.compile(pattern, name="filename")
        return compiled


def asset_root(storage: LocalStorage, template_uid: str) -> Path:
    return storage.path(f"templates/{template_uid}")


def pdf_options(raw: dict[str, Any] | None) -> PdfOptions:
    raw = raw or {}
    return PdfOptions(
        page_size=raw.get("page_size"),
        landscape=bool(raw.get("landscape", False)),
        margin_mm=float(raw.get("margin_mm", 0.0)),
    )


BatchFinished = Callable[[int, str], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        db: Engine,
        storage: LocalStorage,
        renderer: ChromiumRenderer,
        templates: TemplateCache,
        on_batch_finished: BatchFinished | None = None,
        recorder: Any = None,
    ) -> None:
        self.db, self.storage, self.renderer, self.templates = db, storage, renderer, templates
        self.on_batch_finished = on_batch_finished
        self.recorder = recorder  # webhooks.store.EventRecorder: events written with the outcome
        # Twice the pages: templating and storage writes overlap with rendering.
        self.capacity = renderer.concurrency * 2
        self.in_flight: dict[int, int] = defaultdict(int)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[int, Any] = {}  # the immutable fields of batches with items in flight
        self._paused_until = 0.0
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
            self._wake.set()

    async def _render(self, batch: Any, item: Any) -> dict[str, Any] | None:
        try:
            prepared = await asyncio.to_thread(self.templates.get, batch.template_id, batch.template_version)
            variables = prepared.row(json.loads(item.variables))
            # In a thread: a template may use its whole time budget, and the event loop must not stall.
            html = await asyncio.to_thread(prepared.template.render, variables, locale=batch.locale)
            file_name = None
            if batch.filename:
                # The engine HTML-escapes its output; a file name is the row's own text.
                pattern = self.templates.filename_pattern(batch.filename)
                file_name = unescape(await asyncio.to_thread(pattern.render, variables))[:300]
            fmt = OutputFormat(batch.format)
            options = RenderOptions(
                format=fmt,
                width_px=batch.width,
                height_px=batch.height,
                scale=batch.scale,
                quality=batch.quality,
                pdf=prepared.pdf,
            )
            document = build_document(html, stylesheet=False, css=prepared.css)
            result = await self.renderer.render(document, options, asset_root=prepared.asset_root)
            key = f"batches/{batch.uid}/{item.idx}.{fmt.extension}"
            await asyncio.to_thread(self.storage.put, key, result.data)
        except RowError as exc:
            return {"status": "failed", "error_code": exc.code, "error_message": exc.message}
        except BrowserUnavailableError as exc:
            log.error("Chromium is unavailable (%s); pausing for %.0f s", exc.message, UNAVAILABLE_BACKOFF_S)
            self._paused_until = asyncio.get_running_loop().time() + UNAVAILABLE_BACKOFF_S
            return None
        except PressrunError as exc:
            return {"status": "failed", "error_code": exc.code, "error_message": exc.message}
        except Exception as exc:  # a bug fails its item with a reason, not the batch
            log.exception("unexpected error rendering item %d", item.id)
            return {"status": "failed", "error_code": "internal_error", "error_message": f"internal error: {exc}"}
        return {
            "status": "completed",
            "output_key": key,
            "width": result.width_px,
            "height": result.height_px,
            "bytes": len(result.data),
            "render_ms": round(result.render_ms),
            "file_name": file_name,
            "error_code": None,
            "error_message": None,
        }
