"""Webhook event payloads, and :class:`EventRecorder`, which writes them.

The recorder is the :class:`pressrun.db.repo.BatchEvents` the repo tells about finished items and
closed batches, inside the transaction that finished them; it also records single renders. Payloads
use the same builders as the API (:mod:`pressrun.jobs.results`), so a batch.completed event and
``GET /templates/batch/{id}/results`` agree field for field:

- ``batch.completed``: the batch summary (batchId, templateUid, templateVersion, status, format,
  totalItems, completedCount, failedCount, cancelledCount, pendingCount, createdAt, startedAt,
  completedAt), ``totalCount`` (the same as totalItems, kept for receivers written before it),
  ``resultsUrl``, and ``results`` (one item result each) when the batch has at most
  :data:`MAX_INLINE_RESULTS` items.
- ``render.completed`` / ``render.failed`` for a batch item: batchId, format and the item's result
  (index, status, url, width, height, bytes, renderTimeMs, error).
- ``render.completed`` / ``render.failed`` for a single render: what the render route sends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from pressrun.db import repo
from pressrun.jobs.results import batch_summary, item_result
from pressrun.models import BatchStatus, ItemStatus
from pressrun.storage.links import Links

EVENT_TYPES = ("batch.completed", "render.completed", "render.failed")
MAX_INLINE_RESULTS = 1000


class EventRecorder:
    """Writes events and their pending deliveries, inside the caller's transaction."""

    def __init__(self, links: Links) -> None:
        self.links = links

    def batch_finished(self, conn: Connection, batch_id: int, status: BatchStatus) -> None:
        batch = repo.batch_with_template_uid(conn, batch_id)
        targets = repo.subscribed_targets(conn, batch.workspace_id, "batch.completed")
        if batch.webhook_url:
            repo.ensure_batch_secret(conn, batch.workspace_id)  # the workspace has one before it is needed
            targets.append((None, batch.webhook_url))
        if not targets:
            return
        data = {**batch_summary(batch, repo.count_items(conn, batch_id)), "totalCount": batch.total_items,
                "resultsUrl": self.links.results_url(batch.uid)}
        if batch.total_items <= MAX_INLINE_RESULTS:
            data["results"] = [item_result(item, self.links.file_url)
                               for item in repo.items_page(conn, batch_id, 0, MAX_INLINE_RESULTS)]
        repo.record_event(conn, batch.workspace_id, "batch.completed", data, targets)

    def item_finished(self, conn: Connection, batch_id: int, item_id: int) -> None:
        item = repo.item_with_batch(conn, item_id)
        event = "render.completed" if item.status == ItemStatus.COMPLETED else "render.failed"
        targets = repo.subscribed_targets(conn, item.workspace_id, event)
        if not targets:
            return
        data = {"batchId": item.batch_uid, "format": item.format, **item_result(item, self.links.file_url)}
        repo.record_event(conn, item.workspace_id, event, data, targets)

    def single_render(self, engine: Engine, workspace_id: int, data: dict[str, Any], failed: bool) -> None:
        repo.record_subscribed_event(engine, workspace_id, "render.failed" if failed else "render.completed", data)
