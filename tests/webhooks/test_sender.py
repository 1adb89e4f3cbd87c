"""The webhook sender without a network: signatures, retries and their backoff, what is not retried,
and the address policy, through httpx.MockTransport. Driven in bursts (``deliver_due``), no sleeps.

The real-socket cases (pinning to the checked address, a slow receiver) are in tests/api/test_webhooks.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from pressrun.db import repo
from pressrun.db.engine import connect, migrate
from pressrun.settings import WebhookSettings
from pressrun.storage import Links, UrlSigner
from pressrun.webhooks import sender as sender_module
from pressrun.webhooks import verify
from pressrun.webhooks.events import EventRecorder
from pressrun.webhooks.sender import WebhookSender

# Retries are due at once, so each deliver_due() makes the next attempt.
SETTINGS = WebhookSettings(retry_min_s=1e-6, retry_max_s=1e-6, max_attempts=3, timeout_s=1.0,
                           allow_private_networks=True)
URL = "http://receiver.test/hooks/pressrun"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webhooks-db") / "meta.db"
    engine = connect(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def db(migrated: Path, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "meta.db"
    shutil.copyfile(migrated, path)
    engine = connect(f"sqlite:///{path}")
    yield engine
    engine.dispose()


Outcome = int | httpx.Response | Exception


@dataclass
class Receiver:
    """Answers each request with the next outcome (a status, a response, or an exception to raise);
    the last one repeats."""

    outcomes: list[Outcome]
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        outcome = self.outcomes[min(len(self.requests), len(self.outcomes)) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome if isinstance(outcome, httpx.Response) else httpx.Response(outcome)

    def sender(self, db: Engine, settings: WebhookSettings = SETTINGS) -> WebhookSender:
        return WebhookSender(db, settings, transport=httpx.MockTransport(self.handle))


@dataclass
class Subscribed:
    id: int
    secret: str


def subscribe_and_emit(db: Engine, url: str = URL) -> Subscribed:
    """A workspace subscribed to every event at ``url``, and one render.completed event for it."""
    _, key = repo.create_key(db, name="ws", plan="default")
    subscription, secret = repo.create_subscription(db, key.workspace_id, url, ["*"], None, True)
    recorder = EventRecorder(Links(UrlSigner(b"k" * 32), "https://api.test", 3600))
    recorder.single_render(db, key.workspace_id, {"index": 0, "status": "completed"}, failed=False)
    return Subscribed(subscription.id, secret)


def delivery_log(db: Engine, subscription: Subscribed) -> tuple[Any, list[Any]]:
    rows, attempts = repo.list_deliveries(db, subscription.id, 0, 10)
    [delivery] = rows
    return delivery, attempts[delivery.id]


async def test_a_delivery_is_signed_with_the_subscription_secret(db: Engine) -> None:
    subscription = subscribe_and_emit(db)
    receiver = Receiver([200])
    assert await receiver.sender(db).deliver_due() == 1

    [request] = receiver.requests
    verify(request.content, request.headers["X-Pressrun-Signature"], subscription.secret)
    delivery, attempts = delivery_log(db, subscription)
    assert str(request.url) == URL
    assert request.headers["X-Pressrun-Event"] == "render.completed"
    assert request.headers["X-Pressrun-Delivery-Id"] == delivery.uid
    assert request.headers["X-Pressrun-Event-Id"] == json.loads(request.content)["id"]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content)["data"] == {"index": 0, "status": "completed"}
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert [(a.status_code, a.error, a.next_retry_at) for a in attempts] == [(200, None, None)]
    assert await receiver.sender(db).deliver_due() == 0


async def test_a_5xx_is_retried_after_its_backoff_with_the_same_delivery_id(db: Engine, monkeypatch) -> None:
    asked: list[int] = []
    backoff_s = sender_module.backoff_s

    def recorded_backoff(attempt: int, settings: WebhookSettings) -> float:
        asked.append(attempt)
        return backoff_s(attempt, settings)

    monkeypatch.setattr(sender_module, "backoff_s", recorded_backoff)
    subscription = subscribe_and_emit(db)
    receiver = Receiver([500, 503, 200])
    sender = receiver.sender(db)

    assert [await sender.deliver_due() for _ in range(4)] == [1, 1, 1, 0]
    delivery, attempts = delivery_log(db, subscription)
    assert asked == [1, 2]
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert [a.error for a in attempts] == ["HTTP 500", "HTTP 503", None]
    assert [a.next_retry_at is not None for a in attempts] == [True, True, False]
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        assert later.attempted_at >= earlier.next_retry_at  # never before its backoff ran out
    assert len({r.headers["X-Pressrun-Delivery-Id"] for r in receiver.requests}) == 1
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)


async def test_retries_give_up_after_max_attempts(db: Engine) -> None:
    subscription = subscribe_and_emit(db)
    sender = Receiver([500]).sender(db)
    assert [await sender.deliver_due() for _ in range(4)] == [1, 1, 1, 0]
    delivery, attempts = delivery_log(db, subscription)
    assert delivery.status == "failed"
    assert attempts[-1].error == "HTTP 500; gave up after 3 attempts"


async def test_a_4xx_is_not_retried(db: Engine) -> None:
    subscription = subscribe_and_emit(db)
    receiver = Receiver([404])
    sender = receiver.sender(db)
    assert [await sender.deliver_due() for _ in range(2)] == [1, 0]
    delivery, attempts = delivery_log(db, subscription)
    assert (delivery.status, delivery.last_error) == ("failed", "HTTP 404")
    assert [(a.status_code, a.next_retry_at) for a in attempts] == [(404, None)]
    assert len(receiver.requests) == 1


async def test_a_redirect_is_not_followed(db: Engine) -> None:
    subscription = subscribe_and_emit(db)
    receiver = Receiver([httpx.Response(302, headers={"Location": "http://elsewhere.test/steal"}), 200])
    sender = receiver.sender(db)
    assert [await sender.deliver_due() for _ in range(2)] == [1, 0]
    assert [str(r.url) for r in receiver.requests] == [URL]
    delivery, attempts = delivery_log(db, subscription)
    assert (delivery.status, delivery.last_error) == ("failed", "HTTP 302 (redirects are not followed)")
    assert [a.status_code for a in attempts] == [302]


async def test_a_timeout_is_retried(db: Engine) -> None:
    subscription = subscribe_and_emit(db)
    receiver = Receiver([httpx.ReadTimeout("the receiver took too long"), 200])
    sender = receiver.sender(db)
    assert [await sender.deliver_due() for _ in range(3)] == [1, 1, 0]
    delivery, attempts = delivery_log(db, subscription)
    assert [(a.status_code, a.error) for a in attempts] == [(None, "timed out after 1 s"), (200, None)]
    assert delivery.status == "succeeded"


@pytest.mark.parametrize(
    ("url", "sent", "error"),
    [
        ("http://93.184.216.34/hook", True, None),  # a literal public address: no lookup needed
        ("http://10.0.0.5/hook", False, "refused: 10.0.0.5 resolves to 10.0.0.5, a private address"),
        ("http://169.254.169.254/latest/meta-data", False, "a link-local (cloud metadata) address"),
    ],
)
async def test_the_address_policy_runs_before_an_injected_transport(db: Engine, url, sent, error) -> None:
    subscription = subscribe_and_emit(db, url)
    receiver = Receiver([200])
    strict = SETTINGS.model_copy(update={"allow_private_networks": False})
    assert await receiver.sender(db, strict).deliver_due() == 1
    assert [str(r.url) for r in receiver.requests] == ([url] if sent else [])
    delivery, _ = delivery_log(db, subscription)
    assert delivery.status == ("succeeded" if sent else "failed")
    if error is not None:
        assert error in delivery.last_error


async def test_the_receivers_reply_body_is_never_read_and_asked_for_uncompressed(db: Engine) -> None:
    """A receiver's 1.5 MB gzip reply expanding to 1.5 GB took the server to 3 GB: the answer is the
    status code alone. Here the reply claims gzip and would stream 1 GiB if anyone read it."""
    subscription = subscribe_and_emit(db)
    produced = []

    async def endless():
        for _ in range(1 << 14):  # 1 GiB in 64 KiB chunks, made only as they are read
            produced.append(1)
            yield b"\x00" * 65536

    receiver = Receiver([httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=endless())])
    assert await receiver.sender(db).deliver_due() == 1
    [request] = receiver.requests
    assert request.headers["Accept-Encoding"] == "identity"
    assert len(produced) <= 1
    delivery, _ = delivery_log(db, subscription)
    assert delivery.status == "succeeded"


async def test_a_receiver_that_drips_its_answer_meets_one_deadline_for_the_whole_attempt(db: Engine) -> None:
    """httpx's timeouts are per phase: a byte every half second never trips a 1 s read timeout. The
    attempt has one deadline (timeout_s) and is retried like any timeout."""
    subscription = subscribe_and_emit(db)

    class Dripping(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            for _ in range(60):  # bounded: 30 s at most if the deadline did not hold
                await asyncio.sleep(0.5)
            return httpx.Response(200)

    sender = WebhookSender(db, SETTINGS, transport=Dripping())
    started = time.monotonic()
    assert await sender.deliver_due() == 1
    assert time.monotonic() - started < SETTINGS.timeout_s + 2
    delivery, attempts = delivery_log(db, subscription)
    assert [(a.status_code, a.error) for a in attempts] == [(None, "timed out after 1 s")]
    assert delivery.status == "pending"  # to be tried again

