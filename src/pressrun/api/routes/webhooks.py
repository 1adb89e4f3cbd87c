"""/webhook-subscriptions: subscriptions, their secrets, the workspace's batch-webhook secret, and
the delivery log with redelivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, HttpUrl, field_validator
from starlette.concurrency import run_in_threadpool

from pressrun.api.auth import authenticate
from pressrun.api.deps import service_of
from pressrun.api.problems import ApiProblem
from pressrun.api.schemas import Camel
from pressrun.db import repo
from pressrun.db.repo import ApiKey, iso
from pressrun.models import DeliveryStatus
from pressrun.webhooks.events import EVENT_TYPES
from pressrun.webhooks.policy import RefusedUrl, check_url

router = APIRouter(tags=["webhooks"])
VALID_EVENTS = (*EVENT_TYPES, "*")


def check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for event in value:
        if event not in VALID_EVENTS:
            raise ValueError(f"{event!r} is not an event; valid events are {', '.join(VALID_EVENTS)}")
    return sorted(set(value))


class SubscriptionIn(Camel):
    url: HttpUrl
    events: list[str] = Field(default_factory=lambda: ["batch.completed"], min_length=1)
    description: str | None = Field(None, max_length=500)
    active: bool = True

    _events = field_validator("events")(classmethod(lambda cls, v: check_events(v)))


class SubscriptionUpdate(Camel):
    url: HttpUrl | None = None
    events: list[str] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=500)
    active: bool | None = None

    _events = field_validator("events")(classmethod(lambda cls, v: check_events(v)))


def subscription_out(row: Any) -> dict[str, Any]:
    return {
        "uid": row.uid, "url": row.url, "events": row.events, "description": row.description,
        "active": row.active, "disabledReason": row.disabled_reason,
        "consecutiveFailures": row.consecutive_failures, "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


async def allowed(request: Request, url: str) -> None:
    try:
        await check_url(url, allow_private=service_of(request).settings.webhooks.allow_private_networks)
    except RefusedUrl as exc:
        raise ApiProblem(422, f"url: {exc}", code="webhook_url_refused", field="url", value=url) from exc


def subscription_not_found(uid: str) -> ApiProblem:
    return ApiProblem(404, f"no webhook subscription {uid!r} in this workspace", code="subscription_not_found")


async def subscription_or_404(request: Request, key: ApiKey, uid: str) -> Any:
    row = await run_in_threadpool(repo.get_subscription, service_of(request).db, key.workspace_id, uid)
    if row is None:
        raise subscription_not_found(uid)
    return row


@router.post("/webhook-subscriptions", status_code=201)
async def create_subscription(body: SubscriptionIn, request: Request,
                              key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    await allowed(request, str(body.url))
    row, secret = await run_in_threadpool(repo.create_subscription, service_of(request).db, key.workspace_id,
                                          str(body.url), body.events, body.description, body.active)
    return {**subscription_out(row), "secret": secret}


@router.get("/webhook-subscriptions")
async def list_subscriptions(request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    rows = await run_in_threadpool(repo.list_subscriptions, service_of(request).db, key.workspace_id)
    return {"subscriptions": [subscription_out(r) for r in rows]}


# Before /{uid}: "batch-secret" is not a subscription uid.
@router.get("/webhook-subscriptions/batch-secret")
async def get_batch_secret(request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, str]:
    secret = await run_in_threadpool(repo.batch_secret, service_of(request).db, key.workspace_id)
    return {"secret": secret}


@router.post("/webhook-subscriptions/batch-secret/rotate")
async def rotate_batch_secret(request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, str]:
    secret = await run_in_threadpool(lambda: repo.batch_secret(service_of(request).db, key.workspace_id, rotate=True))
    return {"secret": secret}


@router.get("/webhook-subscriptions/{uid}")
async def get_subscription(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    return subscription_out(await subscription_or_404(request, key, uid))


@router.put("/webhook-subscriptions/{uid}")
async def update_subscription(uid: str, body: SubscriptionUpdate, request: Request,
                              key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    await subscription_or_404(request, key, uid)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        changes["url"] = str(changes["url"])
        await allowed(request, changes["url"])
    changes = {k: v for k, v in changes.items() if v is not None or k == "description"}
    row = await run_in_threadpool(repo.update_subscription, service_of(request).db, key.workspace_id, uid, changes)
    return subscription_out(row)


@router.delete("/webhook-subscriptions/{uid}", status_code=204)
async def delete_subscription(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> None:
    if not await run_in_threadpool(repo.delete_subscription, service_of(request).db, key.workspace_id, uid):
        raise subscription_not_found(uid)


@router.post("/webhook-subscriptions/{uid}/rotate-secret")
async def rotate_secret(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, str]:
    secret = await run_in_threadpool(repo.rotate_secret, service_of(request).db, key.workspace_id, uid)
    if secret is None:
        raise subscription_not_found(uid)
    return {"uid": uid, "secret": secret}


def delivery_out(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {
        "id": row.uid, "eventId": row.event_uid, "event": row.type, "url": row.url, "status": row.status,
        "attemptCount": row.attempts, "lastStatusCode": row.last_status_code, "lastError": row.last_error,
        "nextRetryAt": iso(row.next_attempt_at) if row.status == DeliveryStatus.PENDING else None,
        "createdAt": iso(row.created_at), "completedAt": iso(row.completed_at),
        "attempts": [{"time": iso(a.attempted_at), "statusCode": a.status_code, "latencyMs": a.latency_ms,
                      "error": a.error, "nextRetryAt": iso(a.next_retry_at)} for a in attempts],
    }


@router.get("/webhook-subscriptions/{uid}/deliveries")
async def list_deliveries(uid: str, request: Request, offset: int = Query(0, ge=0, le=2**31),
                          limit: int = Query(50, ge=1, le=200), key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    sub = await subscription_or_404(request, key, uid)
    rows, attempts = await run_in_threadpool(repo.list_deliveries, service_of(request).db, sub.id, offset, limit)
    return {"deliveries": [delivery_out(r, attempts[r.id]) for r in rows], "offset": offset, "limit": limit}


@router.post("/webhook-subscriptions/{uid}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(uid: str, delivery_id: str, request: Request,
                    key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    sub = await subscription_or_404(request, key, uid)
    if not sub.active:
        raise ApiProblem(409, f"subscription {uid!r} is disabled; re-enable it (PUT active=true) first",
                         code="subscription_disabled")
    try:
        row = await service_of(request).redeliver(sub.id, delivery_id)
    except repo.DeliveryInFlight as exc:
        raise ApiProblem(409, f"delivery {delivery_id!r} is being sent right now; redeliver it once that attempt "
                         "has finished", code="delivery_in_flight", headers={"Retry-After": "5"}) from exc
    if row is None:
        raise ApiProblem(404, f"no delivery {delivery_id!r} for subscription {uid!r}", code="delivery_not_found")
    return {"id": row.uid, "status": row.status, "message": "queued for delivery"}
