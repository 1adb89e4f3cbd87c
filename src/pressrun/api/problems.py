"""RFC 9457 problem details for every error the API returns.

Body: ``{"type", "title", "status", "detail", "code", ...}``; validation problems add ``errors``,
a list of ``{"field", "value", "message"}`` naming each bad field in the client's own (camelCase) terms.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pressrun.errors import PressrunError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    title = HTTPStatus(status).phrase
    code = code or title.lower().replace(" ", "_").replace("-", "_")
    body = {"type": f"urn:pressrun:problem:{code}", "title": title, "status": status, "detail": detail,
            "code": code, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class ApiProblem(Exception):
    """Raise from a route for a problem response with a specific status and code."""

    def __init__(self, status: int, detail: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code, self.headers, self.extra = status, detail, code, headers, extra


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "form")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def shown(value: Any, limit: int = 120) -> Any:
    """The bad value as the client sent it, cut short when huge (a 10 MB string stays out of logs)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… ({len(value)} characters)"
    if isinstance(value, dict | list):
        text = repr(value)
        return text[:limit] + "…" if len(text) > limit else value
    return value


def validation_errors(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = []
    status = 422
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":
            position = loc[-1] if loc and isinstance(loc[-1], int) else None
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return 400, f"the request body is not valid JSON: {reason} at position {position}", []
        field = field_path(loc)
        message = error.get("msg", "invalid")
        entry = {"field": field, "message": message}
        if error.get("type") != "missing":
            entry["value"] = shown(error.get("input"))
        errors.append(entry)
    first = errors[0]
    detail = f"{first['field']}: {first['message']}"
    if "value" in first:
        detail += f" (got {first['value']!r})"
    if len(errors) > 1:
        detail += f"; and {len(errors) - 1} more"
    return status, detail, errors


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def on_api_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)

    @app.exception_handler(PressrunError)
    async def on_pressrun_error(_request: Request, exc: PressrunError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        details = {k: v for k, v in exc.details.items() if isinstance(v, str | int | float | bool | list)}
        return problem(exc.http_status, exc.message, code=exc.code, **details)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail, errors = validation_errors(exc)
        code = "malformed_json" if status == 400 else "validation_error"
        return problem(status, detail, code=code, errors=errors or None)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal error; the server log has the details", code="internal_error")
