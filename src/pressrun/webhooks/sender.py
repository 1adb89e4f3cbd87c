"""The webhook sender: a background task that delivers pending deliveries, signs them, retries
with exponential backoff and jitter, and logs every attempt.

It runs beside rendering, never in its way: rendering only writes rows, and the sender reads them.
A slow or dead receiver costs at most ``webhooks.concurrency`` connections and never changes a
batch's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from pressrun import __version__
from pressrun.background import cancel_and_wait, nap
from pressrun.db import repo
from pressrun.models import DeliveryStatus
from pressrun.settings import WebhookSettings
from pressrun.webhooks.policy import RefusedUrl, UnresolvedUrl, check_url, pinned
from pressrun.webhooks.signing import sign

log = logging.getLogger(__name__)
POLL_S = 0.5


def backoff_s(attempt: int, settings: WebhookSettings, rng: random.Random = random) -> float:  # type: ignore[assignment]
    """Delay after failed attempt number ``attempt`` (1-based): min·2^(n-1), capped, ±20 % jitter."""
    base = min(settings.retry_max_s, settings.retry_min_s * 2 ** (attempt - 1))
    return base * rng.uniform(0.8, 1.2)


def retryable(status_code: int | None) -> bool:
    """Timeouts and connection errors (no status), 429 and 5xx are retried; other 4xx are not."""
    return status_code is None or status_code == 429 or status_code >= 500


class WebhookSender:
    """``run()`` is the service's loop; ``deliver_due()`` is one pass of it that returns (tests drive
    the sender in bursts with it).

    ``transport``: what the HTTP client sends through (default: the network). Tests pass an
    ``httpx.MockTransport``; the address policy still runs before every request, so a test URL must
    pass it (a literal public IP, or any host with ``allow_private_networks``).
    """

    def __init__(self, db: Engine, settings: WebhookSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db, self.settings, self.transport = db, settings, transport
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.settings.concurrency, max_keepalive_connections=0)
        return httpx.AsyncClient(follow_redirects=False, limits=limits, trust_env=False, transport=self.transport)

    async def _claim(self, limit: int) -> list[Any]:
        """Lease up to ``limit`` deliveries that are due now, counting the attempt about to be made."""
        # Longer than an attempt can take (its deadline is timeout_s), so a lease never runs out while
        # its delivery is being sent and the same delivery is never sent twice at once.
        lease = timedelta(seconds=self.settings.timeout_s * 2 + 5)
        return await asyncio.to_thread(repo.claim_due, self.db, limit, lease)

    async def run(self) -> None:
        released = await asyncio.to_thread(repo.release_leases, self.db)
        if released:
            log.info("%d webhook deliveries were cut off by an earlier run; sending them again", released)
        async with self._client() as client:
            try:
                while True:
                    free = self.settings.concurrency - len(self._tasks)
                    claimed: list[Any] = []
                    if free > 0:
                        try:
                            claimed = await self._claim(free)
                        except Exception:  # the database may be busy for a moment
                            log.exception("claiming webhook deliveries failed")
                    for delivery in claimed:
                        task = asyncio.create_task(self._deliver(client, delivery))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    if len(claimed) < max(free, 1):
                        await nap(self._wake, POLL_S)
            finally:
                await cancel_and_wait(self._tasks)

    async def deliver_due(self) -> int:
        """One attempt at each delivery due now, up to ``concurrency`` of them; returns how many were
        attempted. What an attempt schedules for later (a retry) waits for the next call."""
        async with self._client() as client:
            claimed = await self._claim(self.settings.concurrency)
            await asyncio.gather(*(self._deliver(client, delivery) for delivery in claimed))
        return len(claimed)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Any) -> None:
        try:
            await self._attempt(client, delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease expires and the delivery is tried again
            log.exception("webhook delivery %s failed unexpectedly", delivery.uid)
        finally:
            self._wake.set()

    async def _post(self, client: httpx.AsyncClient, delivery: Any, body: bytes, secret: str) -> int:
        """Send one delivery to the checked address; its answer is the status code alone. The reply's
        body is never read (a receiver's 1.5 MB of gzip expanding to 1.5 GB took the server to 3 GB),
        and asked for uncompressed."""
        addresses = await check_url(delivery.url, allow_private=self.settings.allow_private_networks)
        target, host_header, extensions = pinned(delivery.url, addresses)
        headers = {
            **host_header,
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": f"pressrun-webhooks/{__version__}",
            "X-Pressrun-Event": delivery.type,
            "X-Pressrun-Event-Id": delivery.event_uid,
            "X-Pressrun-Delivery-Id": delivery.uid,
            "X-Pressrun-Signature": sign(body, secret),
        }
        async with client.stream("POST", target, content=body, timeout=self.settings.timeout_s,
                                 extensions=extensions, headers=headers) as response:
            return response.status_code

    async def _attempt(self, client: httpx.AsyncClient, delivery: Any) -> None:
        if delivery.subscription_id is not None and not delivery.subscription_active:
            await asyncio.to_thread(repo.fail_without_attempt, self.db, delivery,
                                    "the subscription is disabled or deleted")
            return
        secret = delivery.subscription_secret if delivery.subscription_id is not None else delivery.batch_webhook_secret
        body = delivery.body.encode()
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            # One deadline for the whole attempt: httpx's timeouts are per phase, so a receiver that
            # drips its reply a byte at a time would hold a delivery slot (and outlive the lease) forever.
            async with asyncio.timeout(self.settings.timeout_s):
                status_code = await self._post(client, delivery, body, secret)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
        except UnresolvedUrl as exc:  # DNS may be back on the next attempt
            error = f"could not resolve: {exc}"
        except RefusedUrl as exc:
            error = f"refused: {exc}"
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {self.settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = round((time.perf_counter() - started) * 1000)
        if error is None:
            outcome, next_retry = DeliveryStatus.SUCCEEDED, None
        elif error.startswith("refused:") or not retryable(status_code):
            outcome, next_retry = DeliveryStatus.FAILED, None
        elif delivery.attempts >= self.settings.max_attempts:
            outcome, next_retry = DeliveryStatus.FAILED, None
            error += f"; gave up after {delivery.attempts} attempts"
        else:
            outcome = DeliveryStatus.PENDING  # to be tried again
            next_retry = repo.now() + timedelta(seconds=backoff_s(delivery.attempts, self.settings))
        await asyncio.to_thread(
            repo.record_attempt, self.db, delivery, status_code=status_code, latency_ms=latency_ms, error=error,
            outcome=outcome, next_retry_at=next_retry, disable_after=self.settings.disable_after_failures,
        )
