"""What a batch and its items look like to clients, built in one place: the results endpoint, the
batch list and the cancel and retry answers, the ZIP manifest's status column and the webhook
payloads (batch.completed and the per-item render.completed / render.failed) all use these.

Pure: rows in, dicts out. A row is anything with the columns of ``items`` (or ``batches`` plus
``template_uid``); links are made by the caller's ``file_url``, so each caller picks its base URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pressrun.db.repo.common import iso
from pressrun.models import SHOWN_EXPIRED, ItemStatus

FileUrl = Callable[[str, datetime | None], str]  # (storage key, made at) -> a signed link to the file


def shown_status(item: Any) -> str:
    """An item's status as clients see it: a completed item whose file the sweeper deleted is
    'expired' (:data:`pressrun.models.SHOWN_EXPIRED`); otherwise the stored status."""
    if item.status == ItemStatus.COMPLETED and item.expired_at is not None:
        return SHOWN_EXPIRED
    return item.status


def has_file(item: Any) -> bool:
    """Whether the item's output can still be downloaded."""
    return shown_status(item) == ItemStatus.COMPLETED and bool(item.output_key)


def item_result(item: Any, file_url: FileUrl) -> dict[str, Any]:
    """One item: index, shown status, a link when it has a file, its size and render time, its error."""
    return {
        "index": item.idx,
        "status": shown_status(item),
        "url": file_url(item.output_key, item.finished_at) if has_file(item) else None,
        "width": item.width,
        "height": item.height,
        "bytes": item.bytes,
        "renderTimeMs": item.render_ms,
        # As errors.jsonl and problem+json have it: code, message and the details (column, value…).
        "error": {"code": item.error_code, "message": item.error_message, **(item.error_details or {})}
        if item.error_code else None,
    }


def batch_summary(batch: Any, counts: Mapping[str, int]) -> dict[str, Any]:
    """One batch with its item counts (``counts``: items per stored status, as repo.item_counts gives)."""
    return {
        "batchId": batch.uid,
        "templateUid": batch.template_uid,
        "templateVersion": batch.template_version,
        "status": batch.status,
        "format": batch.format,
        "totalItems": batch.total_items,
        "completedCount": counts.get(ItemStatus.COMPLETED, 0),
        "failedCount": counts.get(ItemStatus.FAILED, 0),
        "cancelledCount": counts.get(ItemStatus.CANCELLED, 0),
        "pendingCount": sum(counts.get(status, 0) for status in ItemStatus.open()),
        "createdAt": iso(batch.created_at),
        "startedAt": iso(batch.started_at),
        "completedAt": iso(batch.completed_at),
    }
