"""Batch items from the dispatcher's side: requeue what a crash left in flight, find active
batches, claim queued items, record outcomes (closing the batch after its last), release an item
the renderer could not take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import now
from pressrun.db.repo.lifecycle import BatchEvents, close_if_done, lock_batch
from pressrun.db.schema import batches, items
from pressrun.models import BatchStatus, ItemStatus


def requeue_abandoned(engine: Engine, recorder: BatchEvents | None = None) -> int:
    """At start-up of the only dispatcher: items left 'rendering' by a crash go back to the queue.

    Except in batches whose cancel was requested: no one claims those again (see active_batches), so
    their open items are cancelled and the batch is closed (with its batch.completed event, through
    ``recorder``), as the last finish_item would have done. Returns how many items were re-queued."""
    with engine.begin() as conn:
        cancelling = conn.execute(
            select(batches.c.id)
            .where(batches.c.cancel_requested.is_(True), batches.c.status.in_(BatchStatus.open()))
            .order_by(batches.c.id).with_for_update()
        ).scalars().all()
        if cancelling:
            conn.execute(
                update(items).where(items.c.batch_id.in_(cancelling), items.c.status.in_(ItemStatus.open()))
                .values(status=ItemStatus.CANCELLED, finished_at=now())
            )
            for batch_id in cancelling:
                close_if_done(conn, batch_id, recorder)
        return conn.execute(
            update(items).where(items.c.status == ItemStatus.RENDERING)
            .values(status=ItemStatus.QUEUED, started_at=None)
        ).rowcount


def active_batches(engine: Engine) -> list[Row]:
    with reading(engine) as conn:
        return conn.execute(
            select(batches.c.id, batches.c.uid, batches.c.concurrency)
            .where(batches.c.status.in_(BatchStatus.open()), batches.c.cancel_requested.is_(False))
            .order_by(batches.c.created_at, batches.c.id)
        ).all()


def claim_items(engine: Engine, batch_id: int, limit: int) -> list[Row]:
    """Move up to ``limit`` queued items of a batch to 'rendering' and return them."""
    with engine.begin() as conn:
        ids = conn.execute(
            select(items.c.id).where(items.c.batch_id == batch_id, items.c.status == ItemStatus.QUEUED)
            .order_by(items.c.idx).limit(limit).with_for_update(skip_locked=True)
        ).scalars().all()
        if not ids:
            return []
        stamp = now()
        conn.execute(
            update(items).where(items.c.id.in_(ids), items.c.status == ItemStatus.QUEUED)
            .values(status=ItemStatus.RENDERING, started_at=stamp, attempts=items.c.attempts + 1)
        )
        conn.execute(
            update(batches).where(batches.c.id == batch_id, batches.c.status == BatchStatus.PENDING)
            .values(status=BatchStatus.PROCESSING, started_at=stamp)
        )
        return conn.execute(
            select(items.c.id, items.c.idx, items.c.variables, items.c.attempts)
            .where(items.c.id.in_(ids)).order_by(items.c.idx)
        ).all()


def finish_item(engine: Engine, batch_id: int, item_id: int, outcome: dict[str, Any],
                recorder: BatchEvents | None = None) -> BatchStatus | None:
    """Record an item's outcome (only if it is still 'rendering': a retry or restart cannot record it
    twice) and close the batch if it was the last. Returns the batch's final status, if it closed."""
    closed = finish_items(engine, [(batch_id, item_id, outcome)], recorder)
    return closed[0][1] if closed else None


def finish_items(engine: Engine, outcomes: Sequence[tuple[int, int, dict[str, Any]]],
                 recorder: BatchEvents | None = None) -> list[tuple[int, BatchStatus]]:
    """:func:`finish_item` for several items in one transaction (the dispatcher groups outcomes that
    arrive together). Returns (batch id, final status) for each batch this closed."""
    closed: list[tuple[int, BatchStatus]] = []
    with engine.begin() as conn:
        for batch_id in sorted({batch_id for batch_id, _, _ in outcomes}):  # one lock order: no deadlocks
            lock_batch(conn, batch_id)
        stamp = now()
        touched: set[int] = set()
        for batch_id, item_id, outcome in outcomes:
            changed = conn.execute(
                update(items).where(items.c.id == item_id, items.c.status == ItemStatus.RENDERING)
                .values(finished_at=stamp, **outcome)
            ).rowcount
            if changed:
                touched.add(batch_id)
                if recorder is not None:
                    recorder.item_finished(conn, batch_id, item_id)
        for batch_id in sorted(touched):
            final = close_if_done(conn, batch_id, recorder)
            if final is not None:
                closed.append((batch_id, final))
    return closed


def release_item(engine: Engine, batch_id: int, item_id: int,
                 recorder: BatchEvents | None = None) -> BatchStatus | None:
    """Give an item back to the queue (the renderer is unavailable; it is not the row's fault). In a
    batch whose cancel was requested meanwhile, the item is cancelled instead, and the batch may close."""
    with engine.begin() as conn:
        lock_batch(conn, batch_id)
        cancelling = conn.execute(select(batches.c.cancel_requested).where(batches.c.id == batch_id)).scalar_one()
        values = ({"status": ItemStatus.CANCELLED, "finished_at": now()} if cancelling
                  else {"status": ItemStatus.QUEUED, "started_at": None})
        conn.execute(update(items).where(items.c.id == item_id, items.c.status == ItemStatus.RENDERING)
                     .values(**values))
        return close_if_done(conn, batch_id, recorder) if cancelling else None
