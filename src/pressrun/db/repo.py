"""Every query pressrun makes, in one place, as plain functions over a SQLAlchemy engine.

Functions are synchronous (the API and the dispatcher call them in worker threads) and each runs
in its own transaction. Tenant isolation lives here: every lookup by uid takes the workspace id and
returns None for another workspace's rows, which the API turns into 404.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from pressrun.db.engine import reading
from pressrun.db.schema import (
    api_keys,
    batches,
    files,
    idempotency_keys,
    items,
    template_assets,
    template_versions,
    templates,
    workspaces,
)

KEY_PREFIX = "pr_"
OPEN_ITEM_STATES = ("queued", "rendering")
FINISHED_BATCH_STATES = ("completed", "partial", "failed", "cancelled")
INSERT_CHUNK = 1000


def now() -> datetime:
    return datetime.now(UTC)


def new_uid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def hash_key(key: str) -> str:
    """API keys carry 256 random bits, so a fast hash is safe to store (as for GitHub tokens)."""
    return hashlib.sha256(key.encode()).hexdigest()


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything pressrun stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset (None stays None)."""
    value = aware(value)
    return value.isoformat() if value is not None else None


# --- workspaces and keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    id: int
    workspace_id: int
    workspace_uid: str
    name: str
    prefix: str
    plan: str
    key_hash: str


def create_key(engine: Engine, *, name: str, plan: str, workspace_uid: str | None = None) -> tuple[str, ApiKey]:
    """Create an API key (and a workspace for it unless ``workspace_uid`` names one). Returns the key
    itself, which is never stored, and its record."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if workspace_uid is None:
            workspace_uid = new_uid("ws")
            workspace_id = conn.execute(
                insert(workspaces).values(uid=workspace_uid, name=name, created_at=now()).returning(workspaces.c.id)
            ).scalar_one()
        else:
            workspace_id = conn.execute(
                select(workspaces.c.id).where(workspaces.c.uid == workspace_uid)
            ).scalar_one_or_none()
            if workspace_id is None:
                raise LookupError(f"no workspace {workspace_uid!r}")
        key_hash = hash_key(key)
        key_id = conn.execute(
            insert(api_keys)
            .values(workspace_id=workspace_id, name=name, prefix=key[:10], key_hash=key_hash, plan=plan,
                    created_at=now())
            .returning(api_keys.c.id)
        ).scalar_one()
    return key, ApiKey(key_id, workspace_id, workspace_uid, name, key[:10], plan, key_hash)


def find_key(engine: Engine, key: str) -> ApiKey | None:
    with reading(engine) as conn:
        row = conn.execute(
            select(api_keys, workspaces.c.uid.label("workspace_uid"))
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    return ApiKey(row.id, row.workspace_id, row.workspace_uid, row.name, row.prefix, row.plan, row.key_hash)


def list_keys(engine: Engine) -> list[Row]:
    with reading(engine) as conn:
        return list(
            conn.execute(
                select(api_keys, workspaces.c.uid.label("workspace_uid"))
                .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
                .order_by(api_keys.c.id)
            )
        )


def revoke_key(engine: Engine, prefix_or_id: str) -> int:
    with engine.begin() as conn:
        condition = api_keys.c.prefix == prefix_or_id
        if prefix_or_id.isdigit():
            condition = api_keys.c.id == int(prefix_or_id)
        return conn.execute(
            update(api_keys).where(condition, api_keys.c.revoked_at.is_(None)).values(revoked_at=now())
        ).rowcount


def count_keys(engine: Engine) -> int:
    with reading(engine) as conn:
        return conn.execute(select(func.count()).select_from(api_keys)).scalar_one()


def first_workspace_uid(engine: Engine) -> str | None:
    with reading(engine) as conn:
        return conn.execute(select(workspaces.c.uid).order_by(workspaces.c.id).limit(1)).scalar_one_or_none()


# --- templates ----------------------------------------------------------------------------------

VERSION_FIELDS = ("html", "css", "width", "height", "format", "quality", "scale", "locale", "pdf",
                  "sample_data", "column_types")


def create_template(engine: Engine, workspace_id: int, name: str, version: dict[str, Any]) -> str:
    uid = new_uid("tpl")
    stamp = now()
    with engine.begin() as conn:
        template_id = conn.execute(
            insert(templates)
            .values(uid=uid, workspace_id=workspace_id, name=name, current_version=1, created_at=stamp,
                    updated_at=stamp)
            .returning(templates.c.id)
        ).scalar_one()
        conn.execute(insert(template_versions).values(template_id=template_id, version=1, created_at=stamp,
                                                      **version))
    return uid


def get_template(engine: Engine, workspace_id: int, uid: str, version: int | None = None) -> Row | None:
    """The template with its current (or the given) version's fields."""
    with reading(engine) as conn:
        return _template_row(conn, workspace_id, uid, version)


def _template_row(conn: Connection, workspace_id: int | None, uid: str, version: int | None) -> Row | None:
    version_match = template_versions.c.version == (version if version is not None else templates.c.current_version)
    query = (
        select(templates, *[template_versions.c[f] for f in VERSION_FIELDS], template_versions.c.version)
        .join(template_versions, and_(template_versions.c.template_id == templates.c.id, version_match))
        .where(templates.c.uid == uid, templates.c.deleted_at.is_(None))
    )
    if workspace_id is not None:
        query = query.where(templates.c.workspace_id == workspace_id)
    return conn.execute(query).first()


def template_version_by_id(engine: Engine, template_id: int, version: int) -> Row | None:
    """For the dispatcher: a batch's pinned version, even if the template was deleted since."""
    with reading(engine) as conn:
        return conn.execute(
            select(templates.c.uid, templates.c.name, *[template_versions.c[f] for f in VERSION_FIELDS])
            .join(template_versions, template_versions.c.template_id == templates.c.id)
            .where(templates.c.id == template_id, template_versions.c.version == version)
        ).first()


def list_templates(engine: Engine, workspace_id: int, offset: int, limit: int) -> tuple[int, list[Row]]:
    with reading(engine) as conn:
        where = and_(templates.c.workspace_id == workspace_id, templates.c.deleted_at.is_(None))
        total = conn.execute(select(func.count()).select_from(templates).where(where)).scalar_one()
        rows = conn.execute(
            select(templates, *[template_versions.c[f] for f in VERSION_FIELDS], template_versions.c.version)
            .join(template_versions, and_(template_versions.c.template_id == templates.c.id,
                                          template_versions.c.version == templates.c.current_version))
            .where(where)
            .order_by(templates.c.created_at.desc(), templates.c.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return total, rows


def update_template(engine: Engine, workspace_id: int, uid: str, name: str | None,
                    changes: dict[str, Any]) -> Row | None:
    """Write a new version with ``changes`` applied over the current one. Running batches keep theirs."""
    with engine.begin() as conn:
        # Serialise updates of one template (PostgreSQL; SQLite's BEGIN IMMEDIATE already does), so
        # each reads the version the previous one wrote instead of both writing the same number.
        conn.execute(select(templates.c.id).where(templates.c.uid == uid, templates.c.workspace_id == workspace_id)
                     .with_for_update())
        current = _template_row(conn, workspace_id, uid, None)
        if current is None:
            return None
        stamp = now()
        version = {f: getattr(current, f) for f in VERSION_FIELDS} | changes
        new_version = current.version + 1
        conn.execute(insert(template_versions).values(template_id=current.id, version=new_version,
                                                      created_at=stamp, **version))
        conn.execute(
            update(templates)
            .where(templates.c.id == current.id)
            .values(current_version=new_version, updated_at=stamp, name=name or current.name)
        )
        return _template_row(conn, workspace_id, uid, None)


def delete_template(engine: Engine, workspace_id: int, uid: str) -> bool:
    """Soft delete: batches already accepted still render with their pinned version."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(templates)
                .where(templates.c.uid == uid, templates.c.workspace_id == workspace_id,
                       templates.c.deleted_at.is_(None))
                .values(deleted_at=now())
            ).rowcount
        )


def find_template_by_name(engine: Engine, workspace_id: int, name: str) -> str | None:
    with reading(engine) as conn:
        return conn.execute(
            select(templates.c.uid).where(templates.c.workspace_id == workspace_id, templates.c.name == name,
                                          templates.c.deleted_at.is_(None))
        ).scalar_one_or_none()


def upsert_asset(engine: Engine, template_id: int, name: str, content_type: str, size: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(template_assets).where(template_assets.c.template_id == template_id,
                                                   template_assets.c.name == name))
        conn.execute(insert(template_assets).values(template_id=template_id, name=name, content_type=content_type,
                                                    bytes=size, created_at=now()))


def list_assets(engine: Engine, template_id: int) -> list[Row]:
    with reading(engine) as conn:
        return conn.execute(
            select(template_assets).where(template_assets.c.template_id == template_id)
            .order_by(template_assets.c.name)
        ).all()


# --- batches and items --------------------------------------------------------------------------


def count_open_batches(engine: Engine, workspace_id: int) -> int:
    with reading(engine) as conn:
        return conn.execute(
            select(func.count()).select_from(batches)
            .where(batches.c.workspace_id == workspace_id, batches.c.status.in_(("pending", "processing")))
        ).scalar_one()


class TooManyOpenBatches(Exception):
    def __init__(self, open_batches: int, limit: int) -> None:
        super().__init__(f"{open_batches} unfinished batches; the limit is {limit}")
        self.open_batches, self.limit = open_batches, limit


def create_batch(engine: Engine, batch: dict[str, Any], rows: Iterable[tuple[dict[str, Any] | None, Any]],
                 max_items: int, recorder: Any = None, max_open: int | None = None) -> tuple[str, int]:
    """Write the batch and its items in one transaction. ``rows`` yields (variables, error) pairs: a
    row with an error (e.g. a CSV cell that is not a number) is stored as a failed item at once.
    Raises :class:`BatchTooLarge` past ``max_items`` (nothing is written) and ValueError when empty."""
    uid = new_uid("batch")
    stamp = now()
    with engine.begin() as conn:
        if max_open is not None:
            # Serialise batch creation per workspace (SQLite's BEGIN IMMEDIATE already does), so
            # parallel requests cannot all pass the plan's limit on unfinished batches.
            conn.execute(select(workspaces.c.id).where(workspaces.c.id == batch["workspace_id"]).with_for_update())
            open_now = conn.execute(
                select(func.count()).select_from(batches)
                .where(batches.c.workspace_id == batch["workspace_id"], batches.c.status.in_(("pending", "processing")))
            ).scalar_one()
            if open_now >= max_open:
                raise TooManyOpenBatches(open_now, max_open)
        batch_id = conn.execute(
            insert(batches).values(uid=uid, status="pending", total_items=0, cancel_requested=False,
                                   created_at=stamp, **batch).returning(batches.c.id)
        ).scalar_one()
        total = 0
        chunk: list[dict[str, Any]] = []
        for variables, error in rows:
            if total >= max_items:
                raise BatchTooLarge(max_items)
            entry: dict[str, Any] = {"batch_id": batch_id, "idx": total, "attempts": 0}
            if error is None:
                entry.update(variables=json.dumps(variables, ensure_ascii=False, default=str), status="queued",
                             error_code=None, error_message=None, finished_at=None)
            else:
                entry.update(variables=json.dumps(variables or {}, default=str), status="failed",
                             error_code=error.code, error_message=error.message, finished_at=stamp)
            chunk.append(entry)
            total += 1
            if len(chunk) >= INSERT_CHUNK:
                conn.execute(insert(items), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(items), chunk)
        if total == 0:
            raise ValueError("empty batch")
        conn.execute(update(batches).where(batches.c.id == batch_id).values(total_items=total))
        _maybe_finish(conn, batch_id, recorder)
    return uid, total


class BatchTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} items")
        self.limit = limit


def get_batch(engine: Engine, workspace_id: int | None, uid: str) -> Row | None:
    with reading(engine) as conn:
        query = select(batches, templates.c.uid.label("template_uid")).join(
            templates, templates.c.id == batches.c.template_id).where(batches.c.uid == uid)
        if workspace_id is not None:
            query = query.where(batches.c.workspace_id == workspace_id)
        return conn.execute(query).first()


def list_batches(engine: Engine, workspace_id: int, offset: int, limit: int) -> tuple[int, list[Row]]:
    with reading(engine) as conn:
        total = conn.execute(
            select(func.count()).select_from(batches).where(batches.c.workspace_id == workspace_id)
        ).scalar_one()
        rows = conn.execute(
            select(batches, templates.c.uid.label("template_uid"))
            .join(templates, templates.c.id == batches.c.template_id)
            .where(batches.c.workspace_id == workspace_id)
            .order_by(batches.c.created_at.desc(), batches.c.id.desc())
            .offset(offset).limit(limit)
        ).all()
    return total, rows


def item_counts(engine: Engine, batch_id: int) -> dict[str, int]:
    with reading(engine) as conn:
        return _counts(conn, batch_id)


def _counts(conn: Connection, batch_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(items.c.status, func.count()).where(items.c.batch_id == batch_id).group_by(items.c.status)
    ).all()
    return {status: count for status, count in rows}


def list_items(engine: Engine, batch_id: int, offset: int, limit: int, status: str | None) -> list[Row]:
    with reading(engine) as conn:
        query = select(items).where(items.c.batch_id == batch_id)
        if status is not None:
            query = query.where(items.c.status == status)
        return conn.execute(query.order_by(items.c.idx).offset(offset).limit(limit)).all()


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


def _maybe_finish(conn: Connection, batch_id: int, recorder: Any = None) -> str | None:
    """Close the batch when no item is open. Returns the final status when it did.

    ``recorder`` (webhooks.store.EventRecorder) writes the batch.completed event in this same
    transaction: the event exists exactly when the batch's end is committed."""
    # One index probe per finished item (not a count over the whole batch: that made a 50,000-item
    # batch quadratic); the full count runs once, when the batch closes.
    still_open = conn.execute(
        select(items.c.id).where(items.c.batch_id == batch_id, items.c.status.in_(OPEN_ITEM_STATES)).limit(1)
    ).first()
    if still_open is not None:
        return None
    counts = _counts(conn, batch_id)
    batch = conn.execute(select(batches.c.status, batches.c.cancel_requested).where(batches.c.id == batch_id)).one()
    if batch.status in FINISHED_BATCH_STATES:
        return None
    completed, failed = counts.get("completed", 0), counts.get("failed", 0)
    if batch.cancel_requested:
        status = "cancelled"
    elif failed == 0:
        status = "completed"
    elif completed == 0:
        status = "failed"
    else:
        status = "partial"
    stamp = now()
    conn.execute(
        update(batches).where(batches.c.id == batch_id)
        .values(status=status, completed_at=stamp, started_at=func.coalesce(batches.c.started_at, stamp))
    )
    if recorder is not None:
        recorder.batch_finished(conn, batch_id, status)
    return status


def _lock_batch(conn: Connection, batch_id: int) -> None:
    """Serialise writers of one batch (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    conn.execute(select(batches.c.id).where(batches.c.id == batch_id).with_for_update())


def cancel_batch(engine: Engine, batch_id: int, recorder: Any = None) -> str:
    """Queued items become cancelled now; rendering ones finish. Returns the batch status after."""
    with engine.begin() as conn:
        _lock_batch(conn, batch_id)
        stamp = now()
        conn.execute(update(batches).where(batches.c.id == batch_id).values(cancel_requested=True))
        conn.execute(
            update(items).where(items.c.batch_id == batch_id, items.c.status == "queued")
            .values(status="cancelled", finished_at=stamp)
        )
        _maybe_finish(conn, batch_id, recorder)
        return conn.execute(select(batches.c.status).where(batches.c.id == batch_id)).scalar_one()


def retry_failed(engine: Engine, batch_id: int) -> int:
    """Put failed items back in the queue; the batch reopens. Returns how many."""
    with engine.begin() as conn:
        _lock_batch(conn, batch_id)
        count = conn.execute(
            update(items).where(items.c.batch_id == batch_id, items.c.status == "failed")
            .values(status="queued", error_code=None, error_message=None, finished_at=None, started_at=None)
        ).rowcount
        if count:
            conn.execute(
                update(batches).where(batches.c.id == batch_id)
                .values(status="processing", completed_at=None, cancel_requested=False)
            )
        return count


# --- the dispatcher's side ----------------------------------------------------------------------


def requeue_abandoned(engine: Engine, recorder: Any = None) -> int:
    """At start-up of the only dispatcher: items left 'rendering' by a crash go back to the queue.

    Except in batches whose cancel was requested: no one claims those again (see active_batches), so
    their open items are cancelled and the batch is closed (with its batch.completed event, through
    ``recorder``), as the last finish_item would have done. Returns how many items were re-queued."""
    with engine.begin() as conn:
        cancelling = conn.execute(
            select(batches.c.id)
            .where(batches.c.cancel_requested.is_(True), batches.c.status.in_(("pending", "processing")))
            .order_by(batches.c.id).with_for_update()
        ).scalars().all()
        if cancelling:
            conn.execute(
                update(items).where(items.c.batch_id.in_(cancelling), items.c.status.in_(OPEN_ITEM_STATES))
                .values(status="cancelled", finished_at=now())
            )
            for batch_id in cancelling:
                _maybe_finish(conn, batch_id, recorder)
        return conn.execute(
            update(items).where(items.c.status == "rendering").values(status="queued", started_at=None)
        ).rowcount


def active_batches(engine: Engine) -> list[Row]:
    with reading(engine) as conn:
        return conn.execute(
            select(batches.c.id, batches.c.uid, batches.c.concurrency)
            .where(batches.c.status.in_(("pending", "processing")), batches.c.cancel_requested.is_(False))
            .order_by(batches.c.created_at, batches.c.id)
        ).all()


def claim_items(engine: Engine, batch_id: int, limit: int) -> list[Row]:
    """Move up to ``limit`` queued items of a batch to 'rendering' and return them."""
    with engine.begin() as conn:
        ids = conn.execute(
            select(items.c.id).where(items.c.batch_id == batch_id, items.c.status == "queued")
            .order_by(items.c.idx).limit(limit).with_for_update(skip_locked=True)
        ).scalars().all()
        if not ids:
            return []
        stamp = now()
        conn.execute(
            update(items).where(items.c.id.in_(ids), items.c.status == "queued")
            .values(status="rendering", started_at=stamp, attempts=items.c.attempts + 1)
        )
        conn.execute(
            update(batches).where(batches.c.id == batch_id, batches.c.status == "pending")
            .values(status="processing", started_at=stamp)
        )
        return conn.execute(
            select(items.c.id, items.c.idx, items.c.variables, items.c.attempts)
            .where(items.c.id.in_(ids)).order_by(items.c.idx)
        ).all()


def finish_item(engine: Engine, batch_id: int, item_id: int, outcome: dict[str, Any],
                recorder: Any = None) -> str | None:
    """Record an item's outcome (only if it is still 'rendering': a retry or restart cannot record it
    twice) and close the batch if it was the last. Returns the batch's final status, if it closed."""
    closed = finish_items(engine, [(batch_id, item_id, outcome)], recorder)
    return closed[0][1] if closed else None


def finish_items(engine: Engine, outcomes: Sequence[tuple[int, int, dict[str, Any]]],
                 recorder: Any = None) -> list[tuple[int, str]]:
    """:func:`finish_item` for several items in one transaction (the dispatcher groups outcomes that
    arrive together). Returns (batch id, final status) for each batch this closed."""
    closed: list[tuple[int, str]] = []
    with engine.begin() as conn:
        for batch_id in sorted({batch_id for batch_id, _, _ in outcomes}):  # one lock order: no deadlocks
            _lock_batch(conn, batch_id)
        stamp = now()
        touched: set[int] = set()
        for batch_id, item_id, outcome in outcomes:
            changed = conn.execute(
                update(items).where(items.c.id == item_id, items.c.status == "rendering")
                .values(finished_at=stamp, **outcome)
            ).rowcount
            if changed:
                touched.add(batch_id)
                if recorder is not None:
                    recorder.item_finished(conn, batch_id, item_id)
        for batch_id in sorted(touched):
            final = _maybe_finish(conn, batch_id, recorder)
            if final is not None:
                closed.append((batch_id, final))
    return closed


def release_item(engine: Engine, batch_id: int, item_id: int, recorder: Any = None) -> str | None:
    """Give an item back to the queue (the renderer is unavailable; it is not the row's fault). In a
    batch whose cancel was requested meanwhile, the item is cancelled instead, and the batch may close."""
    with engine.begin() as conn:
        _lock_batch(conn, batch_id)
        cancelling = conn.execute(select(batches.c.cancel_requested).where(batches.c.id == batch_id)).scalar_one()
        values = {"status": "cancelled", "finished_at": now()} if cancelling else {"status": "queued", "started_at": None}
        conn.execute(update(items).where(items.c.id == item_id, items.c.status == "rendering").values(**values))
        return _maybe_finish(conn, batch_id, recorder) if cancelling else None


# --- single-render files, retention -------------------------------------------------------------


def record_file(engine: Engine, workspace_id: int, key: str, size: int, expires_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(files).values(workspace_id=workspace_id, key=key, bytes=size, created_at=now(),
                                          expires_at=expires_at))


def expired_outputs(engine: Engine, retention: timedelta, limit: int = 500) -> tuple[list[Row], list[Row]]:
    cutoff = now() - retention
    with reading(engine) as conn:
        item_rows = conn.execute(
            select(items.c.id, items.c.output_key)
            .where(items.c.status == "completed", items.c.expired_at.is_(None), items.c.finished_at < cutoff)
            .limit(limit)
        ).all()
        file_rows = conn.execute(select(files.c.id, files.c.key).where(files.c.expires_at < now()).limit(limit)).all()
    return item_rows, file_rows


def mark_expired(engine: Engine, item_ids: Sequence[int], file_ids: Sequence[int]) -> None:
    with engine.begin() as conn:
        if item_ids:
            conn.execute(update(items).where(items.c.id.in_(item_ids)).values(expired_at=now()))
        if file_ids:
            conn.execute(delete(files).where(files.c.id.in_(file_ids)))


# --- idempotency --------------------------------------------------------------------------------


def idempotency_begin(engine: Engine, key_hash: str, idem_key: str, request_hash: str,
                      ttl: timedelta) -> Row | None:
    """Claim ``idem_key`` for this request. Returns None when claimed (go ahead), else the earlier
    record (its status_code is None while the first request is still running)."""
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now() - ttl))
                existing = conn.execute(
                    select(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash,
                                                   idempotency_keys.c.idem_key == idem_key)
                ).first()
                if existing is not None:
                    return existing
                conn.execute(insert(idempotency_keys).values(key_hash=key_hash, idem_key=idem_key,
                                                             request_hash=request_hash, created_at=now()))
                return None
        except IntegrityError:
            # PostgreSQL: a concurrent request with the same key inserted between our SELECT and INSERT
            # (the unique constraint made us wait for it to commit). Look again: its record is there now.
            if attempt:
                raise
    raise AssertionError("unreachable")


def idempotency_finish(engine: Engine, key_hash: str, idem_key: str, status_code: int, content_type: str | None,
                       body: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key_hash == key_hash, idempotency_keys.c.idem_key == idem_key)
            .values(status_code=status_code, content_type=content_type, body=body)
        )


def idempotency_abandon(engine: Engine, key_hash: str, idem_key: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash,
                                                    idempotency_keys.c.idem_key == idem_key,
                                                    idempotency_keys.c.status_code.is_(None)))


def batch_by_id(engine: Engine, batch_id: int) -> Row:
    with reading(engine) as conn:
        return conn.execute(select(batches).where(batches.c.id == batch_id)).one()


def workspace_id(engine: Engine, uid: str) -> int | None:
    with reading(engine) as conn:
        return conn.execute(select(workspaces.c.id).where(workspaces.c.uid == uid)).scalar_one_or_none()
