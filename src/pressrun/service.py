"""The running service: settings, database, storage, renderer, dispatcher and sweeper, wired once.

``pressrun serve`` builds one :class:`Service` and hands it to the API (``app.state.service``);
tests build their own against a temporary data directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine

from pressrun.background import cancel_and_wait
from pressrun.db import connect, migrate, repo
from pressrun.jobs.dispatcher import Dispatcher
from pressrun.rendering import ChromiumRenderer, Renderer
from pressrun.settings import PlanSettings, Settings
from pressrun.storage import Links, LocalStorage, Storage, UrlSigner, load_or_create_secret
from pressrun.templating.engines import make_isolated_engine
from pressrun.templating.prepared import TemplateCache, asset_folder_key
from pressrun.webhooks.events import EventRecorder
from pressrun.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)


class Service:
    """Each external part can be handed in (``db``, ``storage``, ``renderer``, ``webhook_transport``);
    by default the service builds the real ones from ``settings``. Tests of the layers above the
    browser hand in pressrun.rendering.fake.FakeRenderer and pressrun.storage.MemoryStorage."""

    def __init__(self, settings: Settings, *, db: Engine | None = None, storage: Storage | None = None,
                 renderer: Renderer | None = None, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = db or connect(settings.resolved_database_url)
        self.storage: Storage = storage if storage is not None else LocalStorage(settings.data_dir / "files")
        self.signer = UrlSigner(load_or_create_secret(settings.data_dir / "secret.key"))
        # Templates are untrusted: rows render in child processes with hard time and memory limits.
        self.template_engine = make_isolated_engine(settings)
        self.templates = TemplateCache(partial(repo.template_version_by_id, self.db), self.template_engine,
                                       self.asset_root)
        self.renderer: Renderer = renderer if renderer is not None else ChromiumRenderer(settings.render)
        self.links = Links(self.signer, self.base_url, settings.api.retention_s)
        self.events = EventRecorder(self.links)
        self.webhooks = WebhookSender(self.db, settings.webhooks, transport=webhook_transport)
        self.dispatcher = Dispatcher(self.db, self.storage, self.renderer, self.templates, recorder=self.events,
                                     on_batch_finished=self._batch_finished)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self._tasks: list[asyncio.Task[None]] = []
        self.browser_ready = False

    def asset_root(self, template_uid: str) -> Path:
        """The folder a stored template's assets (images, fonts) load from."""
        return self.storage.path(asset_folder_key(template_uid))

    @property
    def base_url(self) -> str:
        """Where clients reach this server, for links that leave a request's context (webhooks)."""
        api = self.settings.api
        return (api.public_url or f"http://{api.host}:{api.port}").rstrip("/")

    def expires_at(self, made_at: datetime | None) -> datetime:
        """When an output made at ``made_at`` (default: now) is deleted, and its links stop working."""
        return self.links.expires_at(made_at)

    def file_url(self, key: str, made_at: datetime | None, base_url: str | None = None) -> str:
        """A signed link to a stored output; it expires with the output (retention after it was made)."""
        return self.links.file_url(key, made_at, base_url)

    async def _batch_finished(self, _batch_id: int, _status: str) -> None:
        self.webhooks.wake()

    # What changes a batch or a delivery, and which background loop that wakes: decided here, not in routes.

    async def accept_batch(self, batch: dict[str, Any], rows: Iterable[tuple[dict[str, Any] | None, Any]],
                           max_items: int, max_open: int) -> tuple[str, int]:
        """Write a batch and its items (see repo.create_batch); the dispatcher starts on it, and a batch
        that closed at once (every row was bad) has its batch.completed event sent."""
        accepted = await asyncio.to_thread(repo.create_batch, self.db, batch, rows, max_items, self.events, max_open)
        self.dispatcher.wake()
        self.webhooks.wake()
        return accepted

    async def cancel_batch(self, batch_id: int) -> str:
        """Cancel what has not started; returns the batch's status after (cancelled, or still processing)."""
        status = await asyncio.to_thread(repo.cancel_batch, self.db, batch_id, self.events)
        self.webhooks.wake()
        return status

    async def retry_batch(self, batch_id: int) -> int:
        """Queue the batch's failed items again; returns how many."""
        count = await asyncio.to_thread(repo.retry_failed, self.db, batch_id)
        if count:
            self.dispatcher.wake()
        return count

    async def redeliver(self, subscription_id: int, delivery_uid: str) -> Any:
        """Send a webhook delivery again now (see repo.redeliver); None when there is no such delivery."""
        row = await asyncio.to_thread(repo.redeliver, self.db, subscription_id, delivery_uid)
        if row is not None:
            self.webhooks.wake()
        return row

    async def single_render_done(self, workspace_id: int, data: dict[str, Any], *, failed: bool) -> None:
        """render.completed / render.failed for the workspace's subscriptions (a single render)."""
        await asyncio.to_thread(self.events.single_render, self.db, workspace_id, data, failed)
        self.webhooks.wake()

    def migrate(self) -> None:
        migrate(self.db)

    def plan(self, name: str) -> PlanSettings:
        plans = self.settings.api.plans
        return plans.get(name) or plans.get("default") or PlanSettings()

    def rate_limit(self, plan: str):  # type: ignore[no-untyped-def]
        return parse(self.plan(plan).rate_limit)

    async def start(self, *, dispatch: bool = True, deliver: bool = True) -> None:
        """Migrate, start the renderer and the background loops. ``dispatch`` / ``deliver`` False: the
        dispatcher / webhook sender is driven by its caller in burst mode (``drain``, ``deliver_due``)."""
        await asyncio.to_thread(self.migrate)
        # The embedded service is the only writer of its storage and the only holder of Idempotency-Key
        # claims: whatever a crash left half-written goes now (the items it belonged to are re-queued
        # by the dispatcher), and so do the claims of requests it never answered.
        removed = await asyncio.to_thread(self.storage.remove_temporary_files)
        if removed:
            log.info("removed %d half-written files left by an earlier run", removed)
        released = await asyncio.to_thread(repo.idempotency_release_claims, self.db)
        if released:
            log.info("released %d Idempotency-Key claims of requests an earlier run did not answer", released)
        await self.renderer.start()
        self.browser_ready = True
        if dispatch:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="dispatcher"))
        if deliver:
            self._tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="sweeper"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.renderer.close()
        self.template_engine.close()
        self.browser_ready = False

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # the sweeper must outlive a bad moment (disk, database)
                log.exception("sweeping expired outputs failed")
            await asyncio.sleep(self.settings.api.sweep_interval_s)

    def sweep(self) -> int:
        """Delete outputs past the retention period; mark their items expired. Returns how many."""
        retention = timedelta(seconds=self.settings.api.retention_s)
        self.storage.remove_temporary_files(older_than_s=3600)
        done = 0
        while True:
            item_rows, file_rows = repo.expired_outputs(self.db, retention)
            if not item_rows and not file_rows:
                return done
            for row in item_rows:
                if row.output_key:
                    self.storage.delete(row.output_key)
            for row in file_rows:
                self.storage.delete(row.key)
            repo.mark_expired(self.db, [r.id for r in item_rows], [r.id for r in file_rows])
            done += len(item_rows) + len(file_rows)
