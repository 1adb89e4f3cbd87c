"""How a batch closes, shared by the API's side (create, cancel) and the dispatcher's (finish,
release, requeue): the per-batch write lock, the item counts, the close itself, and
:class:`BatchEvents`, the protocol through which the close (and each finished item) is announced
inside the same transaction.

The status a closing batch gets is decided by :func:`pressrun.models.closing_status`; this module
only gathers its inputs and writes the result.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from pressrun.db.repo.common import now
from pressrun.db.schema import batches, items
from pressrun.models import BatchStatus, ItemStatus, closing_status


class BatchEvents(Protocol):
    """Told about a batch's life by the repo, inside the transaction that changed it, so whatever it
    writes (webhook events: :class:`pressrun.webhooks.events.EventRecorder`) commits exactly when its
    cause does. Implementations must not commit or open transactions of their own."""

    def batch_finished(self, conn: Connection, batch_id: int, status: BatchStatus) -> None:
        """The batch just closed with ``status`` (its row already says so)."""

    def item_finished(self, conn: Connection, batch_id: int, item_id: int) -> None:
        """The item's outcome (completed or failed) was just recorded."""


def lock_batch(conn: Connection, batch_id: int) -> None:
    """Serialise writers of one batch (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    conn.execute(select(batches.c.id).where(batches.c.id == batch_id).with_for_update())


def count_items(conn: Connection, batch_id: int) -> dict[str, int]:
    """How many of the batch's items are in each status (statuses with none are left out)."""
    rows = conn.execute(
        select(items.c.status, func.count()).where(items.c.batch_id == batch_id).group_by(items.c.status)
    ).all()
    return {status: count for status, count in rows}


def close_if_done(conn: Connection, batch_id: int, events: BatchEvents | None = None) -> BatchStatus | None:
    """Close the batch when no item is open. Returns the final status when it did.

    ``events`` hears of the close in this same transaction: a batch.completed webhook event exists
    exactly when the batch's end is committed."""
    # One index probe per finished item (not a count over the whole batch: that made a 50,000-item
    # batch quadratic); the full count runs once, when the batch closes.
    still_open = conn.execute(
        select(items.c.id).where(items.c.batch_id == batch_id, items.c.status.in_(ItemStatus.open())).limit(1)
    ).first()
    if still_open is not None:
        return None
    counts = count_items(conn, batch_id)
    batch = conn.execute(select(batches.c.status, batches.c.cancel_requested).where(batches.c.id == batch_id)).one()
    if batch.status in BatchStatus.finished():
        return None
    status = closing_status(cancel_requested=batch.cancel_requested, completed=counts.get(ItemStatus.COMPLETED, 0),
                            failed=counts.get(ItemStatus.FAILED, 0))
    stamp = now()
    conn.execute(
        update(batches).where(batches.c.id == batch_id)
        .values(status=status, completed_at=stamp, started_at=func.coalesce(batches.c.started_at, stamp))
    )
    if events is not None:
        events.batch_finished(conn, batch_id, status)
    return status
