"""Shared helpers for routes: the service, signed file URLs, template lookup, compile checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from pressrun.api.problems import ApiProblem
from pressrun.db import repo
from pressrun.errors import TemplateSyntaxError
from pressrun.service import Service
from pressrun.templating.prepared import RowTemplate


def service_of(request: Request) -> Service:
    return request.app.state.service


def base_url(request: Request) -> str:
    """The base of links in a response: api.public_url, else the URL this client used if its host is
    one the server may be called by (api.allowed_hosts, api.host), else the server's own address. A
    forged Host header must not make signed links point at someone else's server."""
    service = service_of(request)
    api = service.settings.api
    if api.public_url:
        return api.public_url.rstrip("/")
    host = (request.url.hostname or "").lower().strip("[]")
    if "*" in api.allowed_hosts or host in {h.lower().strip("[]") for h in (*api.allowed_hosts, api.host)}:
        return str(request.base_url).rstrip("/")
    return service.base_url


def file_url(request: Request, key: str, made_at: datetime | None) -> str:
    """A signed link to an output, on the base URL this client reached us at."""
    return service_of(request).file_url(key, made_at, base_url(request))


async def template_or_404(request: Request, workspace_id: int, uid: str) -> Any:
    row = await run_in_threadpool(repo.get_template, service_of(request).db, workspace_id, uid)
    if row is None:
        raise template_not_found(uid)
    return row


def template_not_found(uid: str) -> ApiProblem:
    return ApiProblem(404, f"no template with uid {uid!r} in this workspace", code="template_not_found",
                      templateUid=uid)


def compile_source(request: Request, html: str, field: str = "html") -> RowTemplate:
    """Compile a client's template source in the service's (isolated) engine; a syntax error is a 422
    naming the field and the line. Blocking: call it in a worker thread."""
    try:
        return service_of(request).template_engine.compile(html, name="template.html")
    except TemplateSyntaxError as exc:
        line = exc.details.get("line")
        raise ApiProblem(
            422, f"{field}: {exc.message}", code="template_syntax_error", field=field, line=line,
        ) from exc


def check_template_source(request: Request, html: str, field: str = "html") -> list[str]:
    """Compile to catch syntax errors at create/update time; returns the variables it uses."""
    return compile_source(request, html, field).variables()
