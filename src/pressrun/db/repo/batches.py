"""Batches and their items from the API's side: accept (one transaction for the batch and all its
items), read, list, count, cancel and retry. The dispatcher's side is in dispatch.py; how a batch
closes is in lifecycle.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Engine, Select, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import NO_ERROR, error_columns, new_uid, now
from pressrun.db.repo.lifecycle import BatchEvents, close_if_done, count_items, lock_batch
from pressrun.db.schema import batches, items, templates, workspaces
from pressrun.models import BatchStatus, ItemStatus

INSERT_CHUNK = 1000


class TooManyOpenBatches(Exception):
    def __init__(self, open_batches: int, limit: int) -> None:
        super().__init__(f"{open_batches} unfinished batches; the limit is {limit}")
        self.open_batches, self.limit = open_batches, limit


class EmptyBatch(Exception):
    """The rows held no data row at all (nothing is written)."""


class BatchTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} items")
        self.limit = limit


def _open_batches(conn: Connection, workspace_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(batches)
        .where(batches.c.workspace_id == workspace_id, batches.c.status.in_(BatchStatus.open()))
    ).scalar_one()


def count_open_batches(engine: Engine, workspace_id: int) -> int:
    with reading(engine) as conn:
        return _open_batches(conn, workspace_id)


# Plain strings for the bulk insert: the database driver binds an exact str without looking for an adapter.
QUEUED, FAILED = ItemStatus.QUEUED.value, ItemStatus.FAILED.value


def create_batch(engine: Engine, batch: dict[str, Any], rows: Iterable[tuple[dict[str, Any] | None, Any]],
                 max_items: int, recorder: BatchEvents | None = None,
                 max_open: int | None = None) -> tuple[str, int]:
    """Write the batch and its items in one transaction. ``rows`` yields (variables, error) pairs: a
    row with an error (e.g. a CSV cell that is not a number) is stored as a failed item at once.
    Raises :class:`BatchTooLarge` past ``max_items`` (nothing is written) and :class:`EmptyBatch` when there is no row."""
    uid = new_uid("batch")
    stamp = now()
    with engine.begin() as conn:
        if max_open is not None:
            # Serialise batch creation per workspace (SQLite's BEGIN IMMEDIATE already does), so
            # parallel requests cannot all pass the plan's limit on unfinished batches.
            conn.execute(select(workspaces.c.id).where(workspaces.c.id == batch["workspace_id"]).with_for_update())
            open_now = _open_batches(conn, batch["workspace_id"])
            if open_now >= max_open:
                raise TooManyOpenBatches(open_now, max_open)
        batch_id = conn.execute(
            insert(batches).values(uid=uid, status=BatchStatus.PENDING, total_items=0, cancel_requested=False,
                                   created_at=stamp, **batch).returning(batches.c.id)
        ).scalar_one()
        total = 0
        # Queued and failed rows go in separate inserts: a queued row binds only the columns it sets
        # (its error columns stay NULL), which keeps 50,000 rows cheap to accept.
        queued: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for variables, error in rows:
            if total >= max_items:
                raise BatchTooLarge(max_items)
            if error is None:
                queued.append({"batch_id": batch_id, "idx": total, "attempts": 0, "status": QUEUED,
                               "variables": json.dumps(variables, ensure_ascii=False, default=str)})
            else:
                failed.append({"batch_id": batch_id, "idx": total, "attempts": 0, "status": FAILED,
                               "variables": json.dumps(variables or {}, default=str), "finished_at": stamp,
                               **error_columns(error)})
            total += 1
            for chunk in (queued, failed):
                if len(chunk) >= INSERT_CHUNK:
                    conn.execute(insert(items), chunk)
                    chunk.clear()
        for chunk in (queued, failed):
            if chunk:
                conn.execute(insert(items), chunk)
        if total == 0:
            raise EmptyBatch()
        conn.execute(update(batches).where(batches.c.id == batch_id).values(total_items=total))
        close_if_done(conn, batch_id, recorder)
    return uid, total


def _with_template_uid() -> Select:
    return select(batches, templates.c.uid.label("template_uid")).join(
        templates, templates.c.id == batches.c.template_id)


def get_batch(engine: Engine, workspace_id: int | None, uid: str) -> Row | None:
    with reading(engine) as conn:
        query = _with_template_uid().where(batches.c.uid == uid)
        if workspace_id is not None:
            query = query.where(batches.c.workspace_id == workspace_id)
        return conn.execute(query).first()


def batch_with_template_uid(conn: Connection, batch_id: int) -> Row:
    """The batch row as :func:`get_batch` returns it, inside the caller's transaction."""
    return conn.execute(_with_template_uid().where(batches.c.id == batch_id)).one()


def batch_by_id(engine: Engine, batch_id: int) -> Row:
    with reading(engine) as conn:
        return conn.execute(select(batches).where(batches.c.id == batch_id)).one()


def list_batches(engine: Engine, workspace_id: int, offset: int, limit: int) -> tuple[int, list[Row]]:
    with reading(engine) as conn:
        total = conn.execute(
            select(func.count()).select_from(batches).where(batches.c.workspace_id == workspace_id)
        ).scalar_one()
        rows = conn.execute(
            _with_template_uid()
            .where(batches.c.workspace_id == workspace_id)
            .order_by(batches.c.created_at.desc(), batches.c.id.desc())
            .offset(offset).limit(limit)
        ).all()
    return total, rows


def item_counts(engine: Engine, batch_id: int) -> dict[str, int]:
    with reading(engine) as conn:
        return count_items(conn, batch_id)


def list_items(engine: Engine, batch_id: int, offset: int, limit: int, status: str | None) -> list[Row]:
    with reading(engine) as conn:
        return items_page(conn, batch_id, offset, limit, status)


def items_page(conn: Connection, batch_id: int, offset: int, limit: int, status: str | None = None) -> list[Row]:
    """:func:`list_items` inside the caller's transaction."""
    query = select(items).where(items.c.batch_id == batch_id)
    if status is not None:
        query = query.where(items.c.status == status)
    return conn.execute(query.order_by(items.c.idx).offset(offset).limit(limit)).all()


def item_with_batch(conn: Connection, item_id: int) -> Row:
    """An item with its batch's uid, workspace and format, inside the caller's transaction."""
    return conn.execute(
        select(items, batches.c.uid.label("batch_uid"), batches.c.workspace_id, batches.c.format)
        .join(batches, batches.c.id == items.c.batch_id).where(items.c.id == item_id)
    ).one()


def iter_items(engine: Engine, batch_id: int, page: int = 1000) -> Iterator[Row]:
    """Every item of a batch in index order, a page at a time (for ZIP downloads of 50,000 items)."""
    last = -1
    while True:
        with reading(engine) as conn:
            rows = conn.execute(
                select(items).where(items.c.batch_id == batch_id, items.c.idx > last)
                .order_by(items.c.idx).limit(page)
            ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].idx


def cancel_batch(engine: Engine, batch_id: int, recorder: BatchEvents | None = None) -> BatchStatus:
    """Queued items become cancelled now; rendering ones finish. Returns the batch status after."""
    with engine.begin() as conn:
        lock_batch(conn, batch_id)
        stamp = now()
        conn.execute(update(batches).where(batches.c.id == batch_id).values(cancel_requested=True))
        conn.execute(
            update(items).where(items.c.batch_id == batch_id, items.c.status == ItemStatus.QUEUED)
            .values(status=ItemStatus.CANCELLED, finished_at=stamp)
        )
        close_if_done(conn, batch_id, recorder)
        return BatchStatus(conn.execute(select(batches.c.status).where(batches.c.id == batch_id)).scalar_one())


def retry_failed(engine: Engine, batch_id: int) -> int:
    """Put failed items back in the queue; the batch reopens. Returns how many."""
    with engine.begin() as conn:
        lock_batch(conn, batch_id)
        count = conn.execute(
            update(items).where(items.c.batch_id == batch_id, items.c.status == ItemStatus.FAILED)
            .values(status=ItemStatus.QUEUED, finished_at=None, started_at=None, **NO_ERROR)
        ).rowcount
        if count:
            conn.execute(
                update(batches).where(batches.c.id == batch_id)
                .values(status=BatchStatus.PROCESSING, completed_at=None, cancel_requested=False)
            )
        return count
