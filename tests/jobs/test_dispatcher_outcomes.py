"""Outcomes are written in groups, and a failing write is retried rather than stranding items."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from sqlalchemy.exc import OperationalError

from pressrun.db import connect, migrate, repo
from pressrun.jobs import dispatcher as dispatcher_module
from pressrun.jobs.dispatcher import Dispatcher


def make_batch(engine, rows: int) -> int:
    key, record = repo.create_key(engine, name="w", plan="default")
    uid = repo.create_template(engine, record.workspace_id, "t", {
        "html": "x", "css": "", "width": 10, "height": 10, "format": "png", "quality": 90, "scale": 1.0,
        "locale": None, "pdf": {}, "sample_data": None, "column_types": {}})
    template = repo.get_template(engine, record.workspace_id, uid)
    batch = {"workspace_id": record.workspace_id, "template_id": template.id, "template_version": 1, "format": "png",
             "quality": 90, "scale": 1.0, "width": 10, "height": 10, "locale": None, "concurrency": 5,
             "filename": None, "zip": False, "webhook_url": None}
    batch_uid, _ = repo.create_batch(engine, batch, (({"n": i}, None) for i in range(rows)), 100)
    return repo.get_batch(engine, None, batch_uid).id


async def test_outcomes_are_written_after_transient_failures_and_close_the_batch(tmp_path, monkeypatch):
    engine = connect(f"sqlite:///{tmp_path / 'd.db'}")
    migrate(engine)
    batch_id = make_batch(engine, 3)
    claimed = repo.claim_items(engine, batch_id, 3)
    real = repo.finish_items
    calls = []

    def flaky(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) <= 2:
            raise OperationalError("UPDATE items", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, "finish_items", flaky)
    monkeypatch.setattr(dispatcher_module, "WRITE_RETRY_BASE_S", 0.001)
    dispatcher = Dispatcher(engine, None, SimpleNamespace(concurrency=1), None)  # type: ignore[arg-type]
    writer = asyncio.create_task(dispatcher._record_outcomes())
    try:
        done = {"status": "completed", "output_key": "k", "error_code": None, "error_message": None}
        finals = await asyncio.wait_for(
            asyncio.gather(*(dispatcher._record(batch_id, item.id, done) for item in claimed)), timeout=10)
    finally:
        writer.cancel()
    assert calls == [3, 3, 3], "the three outcomes went in one group, retried twice"
    assert sorted(finals, key=str) == [None, None, "completed"]  # the batch closed once
    assert repo.item_counts(engine, batch_id) == {"completed": 3}
    assert repo.get_batch(engine, None, repo.batch_by_id(engine, batch_id).uid).status == "completed"
