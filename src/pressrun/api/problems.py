"""RFC 9457 problem details for every error the API returns.

Body: ``{"type", "title", "status", "detail", "code", ...}``; validation problems add ``errors``,
a list of ``{"field", "value", "message"}`` naming each bad field in the client's own (camelCase) terms.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pressrun.errors import PressrunError

PROBLEM_JSON = "application/problem+json"
PARSE_FAILED = "There was an error parsing the body"  # FastAPI's detail when json.loads fails otherwise
MAX_DETAIL = 1000  # a problem never echoes more of the client's input than this
MAX_MESSAGE = 500
MAX_FIELD = 80
log = logging.getLogger(__name__)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def problem(status: int, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    title = HTTPStatus(status).phrase
    code = code or title.lower().replace(" ", "_").replace("-", "_")
    extra = {k: clip(v, MAX_DETAIL) if isinstance(v, str) else v for k, v in extra.items() if v is not None}
    body = {"type": f"urn:pressrun:problem:{code}", "title": title, "status": status,
            "detail": clip(detail, MAX_DETAIL), "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class BodyTooLarge(Exception):
    """A request body grew past the limit while it was being read (pressrun.api.middleware.BodyLimit)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the request body is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


def body_too_large(max_bytes: int) -> JSONResponse:
    return problem(413, f"the request body is larger than {max_bytes / 2**20:g} MiB (setting PRESSRUN_API__MAX_BODY_MB)",
                   code="body_too_large", limitBytes=max_bytes)


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
            out += ("." if out else "") + clip(str(part), MAX_FIELD)
    return out or "body"


def shown(value: Any, limit: int = 120) -> Any:
    """The bad value as the client sent it, cut short when huge (a 10 MB string stays out of logs)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… ({len(value)} characters)"
    if isinstance(value, dict | list):
        text = repr(value)
        return text[:limit] + "…" if len(text) > limit else value
    return value


def validation_errors(exc: RequestValidationError | ValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    """(status, detail, errors): 400 for unparseable JSON, 415 for a body that was not sent as JSON
    (FastAPI then hands the raw bytes to validation), else 422."""
    errors = []
    status = 422
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":
            position = loc[-1] if loc and isinstance(loc[-1], int) else None
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return 400, f"the request body is not valid JSON: {reason} at position {position}", []
        if tuple(loc) == ("body",) and isinstance(error.get("input"), bytes):
            return 415, "send the request body as JSON with 'Content-Type: application/json'", []
        field = field_path(loc)
        message = clip(str(error.get("msg", "invalid")), MAX_MESSAGE)
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


# Answers for a request whose body could not be parsed when its key check fails first (see
# pressrun.api.auth.authenticate_first), else None.
KeyCheck = Callable[[Request], Awaitable[JSONResponse | None]]


async def no_key_check(_request: Request) -> None:
    return None


def install(app: FastAPI, authenticate_first: KeyCheck = no_key_check) -> None:
    """Register the handlers that turn every error into problem+json. ``authenticate_first`` runs
    before a body-parsing problem is answered, so a client without a key hears 401, not 400."""
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
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (denied := await authenticate_first(request)) is not None:
            return denied
        status, detail, errors = validation_errors(exc)
        code = {400: "malformed_json", 415: "unsupported_media_type"}.get(status, "validation_error")
        return problem(status, detail, code=code, errors=errors or None)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == PARSE_FAILED and isinstance(exc.__cause__, BodyTooLarge):
            # A chunked body with no Content-Length outgrew the limit while FastAPI read it as JSON.
            return body_too_large(exc.__cause__.max_bytes)
        if exc.status_code == 400 and exc.detail == PARSE_FAILED:
            # json.loads failed with something other than a JSONDecodeError: not UTF-8, nested
            # deeper than the parser's recursion limit, an integer literal over 4300 digits.
            if (denied := await authenticate_first(request)) is not None:
                return denied
            return problem(400, "the request body is not valid JSON (not UTF-8, nested too deeply, or a number "
                           "too long)", code="malformed_json")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal error; the server log has the details", code="internal_error")
