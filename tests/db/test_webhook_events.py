"""Webhook events written by the real EventRecorder in the transaction that finishes items and
closes a batch (both backends, no browser): their payloads are the API's own item results and
batch summary, and nothing is written for a workspace without subscribers."""

from __future__ import annotations

import json

from sqlalchemy import select

from pressrun.db import repo
from pressrun.db.schema import webhook_deliveries, webhook_events
from pressrun.jobs.results import batch_summary, item_result
from pressrun.storage import Links, UrlSigner
from pressrun.webhooks.events import EventRecorder

LINKS = Links(UrlSigner(b"k" * 32), "https://render.example.com", retention_s=3600)


def events(db) -> list[dict]:
    with db.connect() as conn:
        bodies = conn.execute(select(webhook_events.c.body).order_by(webhook_events.c.id)).scalars().all()
    return [json.loads(body) for body in bodies]


def test_batch_completed_and_render_events_carry_the_api_shapes(db, make):
    ws = make.workspace()
    repo.create_subscription(db, ws.id, "https://hooks.example.com/a", ["*"], None, True)
    uid, batch_id = make.batch(ws, 3, errors={2})  # row 2 fails at creation: no render event for it
    recorder = EventRecorder(LINKS)
    first, second = repo.claim_items(db, batch_id, 2)
    assert repo.finish_item(db, batch_id, first.id, make.completed(first.idx), recorder) is None
    assert repo.finish_item(db, batch_id, second.id, make.failed(), recorder) == "partial"

    completed, failed, closed = events(db)
    rows = repo.list_items(db, batch_id, 0, 10, None)
    link = LINKS.file_url
    assert (completed["event"], failed["event"], closed["event"]) == ("render.completed", "render.failed",
                                                                      "batch.completed")
    assert completed["data"] == {"batchId": uid, "format": "png", **item_result(rows[0], link)}
    assert completed["data"]["url"].startswith("https://render.example.com/files/batches/x/0.png?expires=")
    assert failed["data"] == {"batchId": uid, "format": "png", **item_result(rows[1], link)}
    assert failed["data"]["error"] == {"code": "render_timeout", "message": "it went wrong"}

    summary = batch_summary(repo.get_batch(db, ws.id, uid), repo.item_counts(db, batch_id))
    assert summary["status"] == "partial" and summary["totalItems"] == 3
    data = closed["data"]
    assert {k: data[k] for k in summary} == summary
    assert data["totalCount"] == data["totalItems"] == 3, "totalCount stays, for receivers written before totalItems"
    assert data["resultsUrl"] == f"https://render.example.com/templates/batch/{uid}/results"
    assert data["results"] == [item_result(row, link) for row in rows]
    assert set(data) == {*summary, "totalCount", "resultsUrl", "results"}


def test_a_batch_webhook_url_gets_its_event_and_the_workspace_a_batch_secret(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 1, webhook_url="https://hooks.example.com/batch")
    [item] = repo.claim_items(db, batch_id, 1)
    repo.finish_item(db, batch_id, item.id, make.completed(item.idx), EventRecorder(LINKS))
    [event] = events(db)
    assert event["event"] == "batch.completed" and event["data"]["status"] == "completed"
    with db.connect() as conn:
        [delivery] = conn.execute(select(webhook_deliveries)).all()
    assert (delivery.subscription_id, delivery.url, delivery.status) == (None, "https://hooks.example.com/batch",
                                                                         "pending")
    assert repo.batch_secret(db, ws.id).startswith("whsec_")


def test_no_subscribers_no_events(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 2)
    recorder = EventRecorder(LINKS)
    for item in repo.claim_items(db, batch_id, 2):
        repo.finish_item(db, batch_id, item.id, make.completed(item.idx), recorder)
    assert events(db) == []
