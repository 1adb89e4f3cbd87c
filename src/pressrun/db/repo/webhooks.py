"""Webhook rows: subscriptions, the workspace's batch-webhook secret, events with their pending
deliveries, and the sender's side (claim due deliveries under a lease, log each attempt).

Events are written inside the transaction that caused them (see
:class:`pressrun.webhooks.events.EventRecorder`, which builds their payloads), so an event exists
exactly when its cause committed; a crash right after the commit leaves a pending delivery that
the sender picks up on the next start.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import aware, new_uid, now
from pressrun.db.schema import (
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
    webhook_subscriptions,
    workspace_secrets,
)
from pressrun.models import DeliveryStatus

Target = tuple[int | None, str]  # (subscription id, or None for a batch's own webhookUrl; URL)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- subscriptions ------------------------------------------------------------------------------


def create_subscription(engine: Engine, workspace_id: int, url: str, events: list[str], description: str | None,
                        active: bool) -> tuple[Row, str]:
    secret = new_secret()
    stamp = now()
    uid = new_uid("whsub")
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
                     .values(updated_at=now(), **changes))
        return _subscription(conn, workspace_id, uid)


def delete_subscription(engine: Engine, workspace_id: int, uid: str) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(update(webhook_subscriptions).where(
            webhook_subscriptions.c.uid == uid, webhook_subscriptions.c.workspace_id == workspace_id,
            webhook_subscriptions.c.deleted_at.is_(None)).values(deleted_at=now(), active=False)).rowcount)


def rotate_secret(engine: Engine, workspace_id: int, uid: str) -> str | None:
    secret = new_secret()
    with engine.begin() as conn:
        changed = conn.execute(update(webhook_subscriptions).where(
            webhook_subscriptions.c.uid == uid, webhook_subscriptions.c.workspace_id == workspace_id,
            webhook_subscriptions.c.deleted_at.is_(None)).values(secret=secret, updated_at=now())).rowcount
    return secret if changed else None


def batch_secret(engine: Engine, workspace_id: int, *, rotate: bool = False) -> str:
    with engine.begin() as conn:
        return ensure_batch_secret(conn, workspace_id, rotate=rotate)


def ensure_batch_secret(conn: Connection, workspace_id: int, *, rotate: bool = False) -> str:
    """The workspace's batch-webhook secret, created (or replaced, with ``rotate``) in the caller's
    transaction."""
    current = conn.execute(select(workspace_secrets.c.batch_webhook_secret)
                           .where(workspace_secrets.c.workspace_id == workspace_id)).scalar_one_or_none()
    if current is not None and not rotate:
        return current
    secret = new_secret()
    if current is None:
        conn.execute(insert(workspace_secrets).values(workspace_id=workspace_id, batch_webhook_secret=secret,
                                                      updated_at=now()))
    else:
        conn.execute(update(workspace_secrets).where(workspace_secrets.c.workspace_id == workspace_id)
                     .values(batch_webhook_secret=secret, updated_at=now()))
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
        leased = aware(row.leased_until)
        if row.status == DeliveryStatus.PENDING and leased is not None and leased > now():
            raise DeliveryInFlight(delivery_uid)
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row.id).values(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now(), leased_until=None, completed_at=None))
        return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == row.id)).one()


# --- events -------------------------------------------------------------------------------------


def subscribed_targets(conn: Connection, workspace_id: int, event: str) -> list[Target]:
    """The workspace's active subscriptions that want ``event`` (by name or ``*``)."""
    rows = conn.execute(select(webhook_subscriptions.c.id, webhook_subscriptions.c.url, webhook_subscriptions.c.events)
                        .where(webhook_subscriptions.c.workspace_id == workspace_id,
                               webhook_subscriptions.c.active.is_(True),
                               webhook_subscriptions.c.deleted_at.is_(None))).all()
    return [(r.id, r.url) for r in rows if "*" in r.events or event in r.events]


def record_event(conn: Connection, workspace_id: int, event: str, data: dict[str, Any],
                 targets: list[Target]) -> str | None:
    """Write the event (its body exactly as it will be signed and sent) and one pending delivery per
    target, in the caller's transaction. Nothing is written without targets. Returns the event id."""
    if not targets:
        return None
    uid = new_uid("evt")
    stamp = now()
    body = json.dumps({"event": event, "id": uid, "createdAt": stamp.isoformat(), "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)
    event_id = conn.execute(insert(webhook_events).values(uid=uid, workspace_id=workspace_id, type=event, body=body,
                                                          created_at=stamp).returning(webhook_events.c.id)).scalar_one()
    conn.execute(insert(webhook_deliveries), [
        {"uid": new_uid("whdel"), "event_id": event_id, "subscription_id": sub_id, "workspace_id": workspace_id,
         "url": url, "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": stamp, "created_at": stamp}
        for sub_id, url in targets])
    return uid


def record_subscribed_event(engine: Engine, workspace_id: int, event: str, data: dict[str, Any]) -> str | None:
    """:func:`record_event` for the workspace's subscribers, in a transaction of its own (for events
    that no other write causes: single renders)."""
    with engine.begin() as conn:
        return record_event(conn, workspace_id, event, data, subscribed_targets(conn, workspace_id, event))


# --- the sender's side --------------------------------------------------------------------------


def release_leases(engine: Engine) -> int:
    """At start-up of the only sender: attempts cut off by a crash are due again at once."""
    with engine.begin() as conn:
        return conn.execute(update(webhook_deliveries).where(
            webhook_deliveries.c.status == DeliveryStatus.PENDING, webhook_deliveries.c.leased_until.is_not(None))
            .values(leased_until=None)).rowcount


def claim_due(engine: Engine, limit: int, lease: timedelta) -> list[Row]:
    """Deliveries due now; each is leased while its attempt is in flight, so a crash mid-send retries it."""
    stamp = now()
    with engine.begin() as conn:
        d = webhook_deliveries.c
        ids = conn.execute(select(d.id).where(
            d.status == DeliveryStatus.PENDING, d.next_attempt_at <= stamp,
            or_(d.leased_until.is_(None), d.leased_until < stamp))
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
                   error: str | None, outcome: DeliveryStatus, next_retry_at: datetime | None,
                   disable_after: int) -> None:
    """Log one attempt. ``outcome`` is the delivery's status after it: PENDING (to be retried at
    ``next_retry_at``), SUCCEEDED or FAILED. A failed event counts against its subscription."""
    stamp = now()
    with engine.begin() as conn:
        conn.execute(insert(webhook_attempts).values(delivery_id=delivery.id, attempted_at=stamp,
                                                     status_code=status_code, latency_ms=latency_ms, error=error,
                                                     next_retry_at=next_retry_at))
        values: dict[str, Any] = {"last_status_code": status_code, "last_error": error, "leased_until": None}
        if outcome == DeliveryStatus.PENDING:
            values.update(next_attempt_at=next_retry_at)
        else:
            values.update(status=outcome, completed_at=stamp, next_attempt_at=None)
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values))
        if delivery.subscription_id is None or outcome == DeliveryStatus.PENDING:
            return
        sub = webhook_subscriptions.c
        if outcome == DeliveryStatus.SUCCEEDED:
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
            status=DeliveryStatus.FAILED, last_error=reason, completed_at=now(), next_attempt_at=None,
            leased_until=None))
