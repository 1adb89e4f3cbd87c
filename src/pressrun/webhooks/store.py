"""Webhook rows: subscriptions, the workspace's batch-webhook secret, events and their deliveries.

Events are written by :class:`EventRecorder` inside the transaction that finishes a batch (or an
item), so an event exists exactly when its cause committed; a crash right after the commit leaves a
pending delivery that the sender picks up on the next start.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from pressrun.db import repo
from pressrun.db.engine import reading
from pressrun.db.schema import (
    batches,
    items,
    templates,
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
    webhook_subscriptions,
    workspace_secrets,
)

EVENT_TYPES = ("batch.completed", "render.completed", "render.failed")
MAX_INLINE_RESULTS = 1000


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- subscriptions ------------------------------------------------------------------------------


def create_subscription(engine: Engine, workspace_id: int, url: str, events: list[str], description: str | None,
                        active: bool) -> tuple[Row, str]:
    secret = new_secret()
    stamp = repo.now()
    uid = repo.new_uid("whsub")
    with engine.begin() as conn:
        conn.execute(insert(webhook_subscriptions).values(
            uid=uid, workspace_id=workspace_id, url=url, events=events, description=description, active=active,
            secret=secret, consecutive_failures=0, created_at=stamp, updated_at=stamp))
        return _subscription(conn, workspace_id, uid), secret


def _subscription(conn: Connection, workspace_id: int, uid: str) -> Row | None:
    return conn.execute(select(webhook_subscriptions).where(
        webhook_subscriptions.c.uid == uid, webhook_subscriptions.c.workspace_id == workspace_id,
        webhook_subscriptions.c.deleted_at.is_(None))).first()


def get_subscription(engine: Engine, workspace_id: int, uid: str) -> Row | None:
    with reading(engine) as conn:
        return _subscription(conn, workspace_id, uid)


def list_subscriptions(engine: Engine, workspace_id: int) -> list[Row]:
    with reading(engine) as conn:
        return conn.execute(select(webhook_subscriptions).where(
            webhook_subscriptions.c.workspace_id == workspace_id, webhook_subscriptions.c.deleted_at.is_(None))
            .order_by(webhook_subscriptions.c.created_at.desc(), webhook_subscriptions.c.id.desc())).all()


def update_subscription(engine: Engine, workspace_id: int, uid: str, changes: dict[str, Any]) -> Row | None:
    with engine.begin() as conn:
        if _subscription(conn, workspace_id, uid) is None:
            return None
        if changes.get("active") is True:  # re-enabling clears the automatic disable
            changes = {**changes, "consecutive_failures": 0, "disabled_reason": None}
        conn.execute(update(webhook_subscriptions).where(webhook_subscriptions.c.uid == uid)
                     .values(updated_at=repo.now(), **changes))
        return _subscription(conn, workspace_id, uid)


def delete_subscription(engine: Engine, workspace_id: int, uid: str) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(update(webhook_subscriptions).where(
            webhook_subscriptions.c.uid == uid, webhook_subscriptions.c.workspace_id == workspace_id,
            webhook_subscriptions.c.deleted_at.is_(None)).values(deleted_at=repo.now(), active=False)).rowcount)


def rotate_secret(engine: Engine, workspace_id: int, uid: str) -> str | None:
    secret = new_secret()
    with engine.begin() as conn:
        changed = conn.execute(update(webhook_subscriptions).where(
            webhook_subscriptions.c.uid == uid, webhook_subscriptions.c.workspace_id == workspace_id,
            webhook_subscriptions.c.deleted_at.is_(None)).values(secret=secret, updated_at=repo.now())).rowcount
    return secret if changed else None


def batch_secret(engine: Engine, workspace_id: int, *, rotate: bool = False) -> str:
    with engine.begin() as conn:
        return _batch_secret(conn, workspace_id, rotate=rotate)


def _batch_secret(conn: Connection, workspace_id: int, *, rotate: bool = False) -> str:
    current = conn.execute(select(workspace_secrets.c.batch_webhook_secret)
                           .where(workspace_secrets.c.workspace_id == workspace_id)).scalar_one_or_none()
    if current is not None and not rotate:
        return current
    secret = new_secret()
    if current is None:
        conn.execute(insert(workspace_secrets).values(workspace_id=workspace_id, batch_webhook_secret=secret,
                                                      updated_at=repo.now()))
    else:
        conn.execute(update(workspace_secrets).where(workspace_secrets.c.workspace_id == workspace_id)
                     .values(batch_webhook_secret=secret, updated_at=repo.now()))
    return secret


def list_deliveries(engine: Engine, subscription_id: int, offset: int, limit: int) -> tuple[list[Row], dict]:
    with reading(engine) as conn:
        rows = conn.execute(
            select(webhook_deliveries, webhook_events.c.uid.label("event_uid"), webhook_events.c.type)
            .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
            .where(webhook_deliveries.c.subscription_id == subscription_id)
            .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
            .offset(offset).limit(limit)).all()
        attempts: dict[int, list[Row]] = {r.id: [] for r in rows}
        if rows:
            for attempt in conn.execute(select(webhook_attempts).where(
                    webhook_attempts.c.delivery_id.in_(list(attempts))).order_by(webhook_attempts.c.id)):
                attempts[attempt.delivery_id].append(attempt)
    return rows, attempts


class DeliveryInFlight(Exception):
    """An attempt of this delivery is being sent right now."""


def redeliver(engine: Engine, subscription_id: int, delivery_uid: str) -> Row | None:
    """Send a delivery again now (same delivery id); a finished one gets a fresh set of attempts."""
    with engine.begin() as conn:
        row = conn.execute(select(webhook_deliveries).where(
            webhook_deliveries.c.uid == delivery_uid, webhook_deliveries.c.subscription_id == subscription_id)).first()
        if row is None:
            return None
        leased = repo.aware(row.leased_until)
        if row.status == "pending" and leased is not None and leased > repo.now():
            raise DeliveryInFlight(delivery_uid)
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row.id).values(
            status="pending", attempts=0, next_attempt_at=repo.now(), leased_until=None, completed_at=None))
        return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == row.id)).one()


# --- events -------------------------------------------------------------------------------------


def _wants(subscription_events: list[str], event: str) -> bool:
    return "*" in subscription_events or event in subscription_events


def _matching_subscriptions(conn: Connection, workspace_id: int, event: str) -> list[Row]:
    rows = conn.execute(select(webhook_subscriptions.c.id, webhook_subscriptions.c.url, webhook_subscriptions.c.events)
                        .where(webhook_subscriptions.c.workspace_id == workspace_id,
                               webhook_subscriptions.c.active.is_(True),
                               webhook_subscriptions.c.deleted_at.is_(None))).all()
    return [r for r in rows if _wants(r.events, event)]


def _record(conn: Connection, workspace_id: int, event: str, data: dict[str, Any],
            targets: list[tuple[int | None, str]]) -> str | None:
    if not targets:
        return None
    uid = repo.new_uid("evt")
    stamp = repo.now()
    body = json.dumps({"event": event, "id": uid, "createdAt": stamp.isoformat(), "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)
    event_id = conn.execute(insert(webhook_events).values(uid=uid, workspace_id=workspace_id, type=event, body=body,
                                                          created_at=stamp).returning(webhook_events.c.id)).scalar_one()
    conn.execute(insert(webhook_deliveries), [
        {"uid": repo.new_uid("whdel"), "event_id": event_id, "subscription_id": sub_id, "workspace_id": workspace_id,
         "url": url, "status": "pending", "attempts": 0, "next_attempt_at": stamp, "created_at": stamp}
        for sub_id, url in targets])
    return uid


Links = Callable[[str, datetime | None], str]  # (storage key, finished_at) -> signed absolute URL


class EventRecorder:
    """Writes events and their pending deliveries, inside the caller's transaction."""

    def __init__(self, file_url: Links, results_url: Callable[[str], str]) -> None:
        self.file_url, self.results_url = file_url, results_url

    def batch_finished(self, conn: Connection, batch_id: int, status: str) -> None:
        batch = conn.execute(select(batches, templates.c.uid.label("template_uid"))
                             .join(templates, templates.c.id == batches.c.template_id)
                             .where(batches.c.id == batch_id)).one()
        targets = [(s.id, s.url) for s in _matching_subscriptions(conn, batch.workspace_id, "batch.completed")]
        if batch.webhook_url:
            _batch_secret(conn, batch.workspace_id)  # make sure the workspace has one before it is needed
            targets.append((None, batch.webhook_url))
        if not targets:
            return
        counts = dict(conn.execute(select(items.c.status, func.count()).where(items.c.batch_id == batch_id)
                                   .group_by(items.c.status)).all())
        data: dict[str, Any] = {
            "batchId": batch.uid, "templateUid": batch.template_uid, "status": status,
            "totalCount": batch.total_items, "completedCount": counts.get("completed", 0),
            "failedCount": counts.get("failed", 0), "cancelledCount": counts.get("cancelled", 0),
            "resultsUrl": self.results_url(batch.uid),
        }
        if batch.total_items <= MAX_INLINE_RESULTS:
            data["results"] = [
                {"index": r.idx, "status": r.status,
                 "url": self.file_url(r.output_key, r.finished_at) if r.status == "completed" and r.output_key else None,
                 "error": {"code": r.error_code, "message": r.error_message} if r.error_code else None}
                for r in conn.execute(select(items.c.idx, items.c.status, items.c.output_key, items.c.finished_at,
                                             items.c.error_code, items.c.error_message)
                                      .where(items.c.batch_id == batch_id).order_by(items.c.idx))
            ]
        _record(conn, batch.workspace_id, "batch.completed", data, targets)

    def item_finished(self, conn: Connection, batch_id: int, item_id: int) -> None:
        item = conn.execute(select(items, batches.c.uid.label("batch_uid"), batches.c.workspace_id, batches.c.format)
                            .join(batches, batches.c.id == items.c.batch_id).where(items.c.id == item_id)).one()
        event = "render.completed" if item.status == "completed" else "render.failed"
        subs = _matching_subscriptions(conn, item.workspace_id, event)
        if not subs:
            return
        data = {"batchId": item.batch_uid, "index": item.idx, "status": item.status, "format": item.format}
        if item.status == "completed":
            data.update(url=self.file_url(item.output_key, item.finished_at), width=item.width, height=item.height,
                        bytes=item.bytes)
        else:
            data["error"] = {"code": item.error_code, "message": item.error_message}
        _record(conn, item.workspace_id, event, data, [(s.id, s.url) for s in subs])

    def single_render(self, engine: Engine, workspace_id: int, data: dict[str, Any], failed: bool) -> None:
        event = "render.failed" if failed else "render.completed"
        with engine.begin() as conn:
            subs = _matching_subscriptions(conn, workspace_id, event)
            _record(conn, workspace_id, event, data, [(s.id, s.url) for s in subs])


# --- the sender's side --------------------------------------------------------------------------


def release_leases(engine: Engine) -> int:
    """At start-up of the only sender: attempts cut off by a crash are due again at once."""
    with engine.begin() as conn:
        return conn.execute(update(webhook_deliveries).where(
            webhook_deliveries.c.status == "pending", webhook_deliveries.c.leased_until.is_not(None))
            .values(leased_until=None)).rowcount


def claim_due(engine: Engine, limit: int, lease: timedelta) -> list[Row]:
    """Deliveries due now; each is leased while its attempt is in flight, so a crash mid-send retries it."""
    stamp = repo.now()
    with engine.begin() as conn:
        d = webhook_deliveries.c
        ids = conn.execute(select(d.id).where(
            d.status == "pending", d.next_attempt_at <= stamp, or_(d.leased_until.is_(None), d.leased_until < stamp))
            .order_by(d.next_attempt_at).limit(limit).with_for_update(skip_locked=True)).scalars().all()
        if not ids:
            return []
        conn.execute(update(webhook_deliveries).where(d.id.in_(ids))
                     .values(leased_until=stamp + lease, attempts=d.attempts + 1))
        return conn.execute(
            select(webhook_deliveries, webhook_events.c.uid.label("event_uid"), webhook_events.c.type,
                   webhook_events.c.body, webhook_subscriptions.c.secret.label("subscription_secret"),
                   webhook_subscriptions.c.active.label("subscription_active"),
                   workspace_secrets.c.batch_webhook_secret)
            .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
            .outerjoin(webhook_subscriptions, webhook_subscriptions.c.id == webhook_deliveries.c.subscription_id)
            .outerjoin(workspace_secrets, workspace_secrets.c.workspace_id == webhook_deliveries.c.workspace_id)
            .where(webhook_deliveries.c.id.in_(ids))).all()


def record_attempt(engine: Engine, delivery: Row, *, status_code: int | None, latency_ms: int | None,
                   error: str | None, outcome: str, next_retry_at: datetime | None,
                   disable_after: int) -> None:
    """outcome: 'succeeded', 'retry' or 'failed'. A failed event counts against its subscription."""
    stamp = repo.now()
    with engine.begin() as conn:
        conn.execute(insert(webhook_attempts).values(delivery_id=delivery.id, attempted_at=stamp,
                                                     status_code=status_code, latency_ms=latency_ms, error=error,
                                                     next_retry_at=next_retry_at))
        values: dict[str, Any] = {"last_status_code": status_code, "last_error": error, "leased_until": None}
        if outcome == "retry":
            values.update(next_attempt_at=next_retry_at)
        else:
            values.update(status=outcome, completed_at=stamp, next_attempt_at=None)
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values))
        if delivery.subscription_id is None or outcome == "retry":
            return
        sub = webhook_subscriptions.c
        if outcome == "succeeded":
            conn.execute(update(webhook_subscriptions).where(sub.id == delivery.subscription_id)
                         .values(consecutive_failures=0))
            return
        conn.execute(update(webhook_subscriptions).where(sub.id == delivery.subscription_id)
                     .values(consecutive_failures=sub.consecutive_failures + 1))
        conn.execute(update(webhook_subscriptions).where(
            and_(sub.id == delivery.subscription_id, sub.active.is_(True), sub.consecutive_failures >= disable_after))
            .values(active=False, updated_at=stamp,
                    disabled_reason=f"disabled after {disable_after} consecutive events failed to deliver "
                                    f"(last: {error or status_code}); re-enable with PUT active=true"))


def fail_without_attempt(engine: Engine, delivery: Row, reason: str) -> None:
    """A delivery that must not be sent (its subscription was disabled or deleted meanwhile)."""
    with engine.begin() as conn:
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(
            status="failed", last_error=reason, completed_at=repo.now(), next_attempt_at=None, leased_until=None))
