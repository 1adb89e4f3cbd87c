"""Signed file downloads, liveness and readiness."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from pressrun.api.deps import service_of
from pressrun.api.problems import ApiProblem
from pressrun.errors import PressrunError

router = APIRouter(tags=["system"])
log = logging.getLogger(__name__)

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp",
               "gif": "image/gif", "pdf": "application/pdf"}


@router.get("/files/{key:path}", include_in_schema=False)
async def signed_file(key: str, request: Request, expires: str = "", signature: str = "") -> Any:
    service = service_of(request)
    service.signer.verify(key, expires, signature)
    try:
        path = service.storage.path(key)
    except PressrunError as exc:
        raise ApiProblem(404, "no such file", code="file_not_found") from exc
    if not path.is_file():
        raise ApiProblem(404, "the file no longer exists (expired or deleted)", code="file_not_found")
    suffix = path.suffix.lstrip(".").lower()
    return FileResponse(path, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> Any:
    service = service_of(request)
    checks: dict[str, str] = {}

    def database() -> None:
        with service.db.connect() as conn:
            conn.execute(text("SELECT 1"))

    for name, check in (("database", database), ("storage", service.storage.check)):
        try:
            await run_in_threadpool(check)
            checks[name] = "ok"
        except Exception:  # noqa: BLE001 - readiness reports any failure, whatever its kind
            # /ready answers without a key: the reason (paths, hosts, driver messages) goes to the log only.
            log.exception("readiness check %r failed", name)
            checks[name] = "failed (see the server log)"
    checks["browser"] = "ok" if service.renderer.is_connected() else "failed: Chromium is not running"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)
