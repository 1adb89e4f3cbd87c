"""Outputs and their retention: single-render file records, and what the sweeper may delete
(batch outputs and single-render files past their time), marked once deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import now
from pressrun.db.schema import files, items
from pressrun.models import ItemStatus


def record_file(engine: Engine, workspace_id: int, key: str, size: int, expires_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(files).values(workspace_id=workspace_id, key=key, bytes=size, created_at=now(),
                                          expires_at=expires_at))


def expired_outputs(engine: Engine, retention: timedelta, limit: int = 500) -> tuple[list[Row], list[Row]]:
    cutoff = now() - retention
    with reading(engine) as conn:
        item_rows = conn.execute(
            select(items.c.id, items.c.output_key)
            .where(items.c.status == ItemStatus.COMPLETED, items.c.expired_at.is_(None), items.c.finished_at < cutoff)
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
