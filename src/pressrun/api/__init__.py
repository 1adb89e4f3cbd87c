"""The HTTP API: ``create_app(service)`` builds the FastAPI application around a :class:`Service`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pressrun import __version__
from pressrun.api import problems
from pressrun.api.auth import authenticate_first
from pressrun.api.middleware import AuthFirst, BodyLimit, Idempotency, RateHeaders
from pressrun.api.routes import batches, renders, system, templates, webhooks
from pressrun.service import Service


def create_app(service: Service, *, manage_service: bool = True) -> FastAPI:
    """``manage_service``: start the service (browser, dispatcher, sweeper) with the app and stop it after."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_service:
            await service.start()
        try:
            yield
        finally:
            if manage_service:
                await service.stop()

    app = FastAPI(
        title="pressrun",
        version=__version__,
        summary="Self-hosted bulk renderer: one template × N rows = N images or PDFs.",
        lifespan=lifespan,
    )
    app.state.service = service
    problems.install(app, authenticate_first)
    # Batch routes first: /templates/batch must not be read as a template uid.
    app.include_router(batches.router)
    app.include_router(templates.router)
    app.include_router(renders.router)
    app.include_router(webhooks.router)
    app.include_router(system.router)
    # Outermost last: the body limit, the rate headers on every answer, the key check before any body
    # is read, Idempotency-Key replays (which buffer the body), then the routes.
    app.add_middleware(Idempotency, service_getter=lambda: app.state.service)
    app.add_middleware(AuthFirst)
    app.add_middleware(RateHeaders)
    api = service.settings.api
    app.add_middleware(BodyLimit, max_bytes=api.max_body_mb * 2**20, max_json_bytes=api.max_json_mb * 2**20)
    return app
