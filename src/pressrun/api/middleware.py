"""Pure ASGI middleware: body size limit, rate-limit headers on every response, Idempotency-Key."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pressrun.api.auth import authenticate
from pressrun.api.problems import ApiProblem, BodyTooLarge, body_too_large, problem
from pressrun.db import repo


class RateHeaders:
    """Copy the rate-limit headers the auth dependency computed onto the response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                rate = scope.get("state", {}).get("rate_headers")
                if rate:
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    extra = [(k.lower().encode(), v.encode()) for k, v in rate.items() if k.lower().encode() not in present]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse a body past its limit: by its Content-Length at once, else while it is read. JSON bodies
    (parsed whole, in memory) have a smaller limit than uploads (spooled to disk)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_json_bytes: int) -> None:
        self.app, self.max_bytes, self.max_json_bytes = app, max_bytes, max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        json_body = headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"application/json"
        limit = min(self.max_bytes, self.max_json_bytes) if json_body else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await body_too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await body_too_large(limit)(scope, receive, send)


class AuthFirst:
    """A request that carries a body is authenticated before any of it is read: without a valid key
    (or past its rate limit) it is answered at once, and its body is never buffered or parsed (an 89 MB
    JSON body without a key took the server to 2.4 GB before the 401)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and carries_body(scope):
            try:
                await authenticate(Request(scope))
            except ApiProblem as exc:
                await problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def carries_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"0")
    return (length.isdigit() and int(length) > 0) or b"transfer-encoding" in headers


class Idempotency:
    """Same ``Idempotency-Key`` and same request within the TTL → the first response, replayed.

    Scoped per API key. The key is claimed before the request runs, so two concurrent requests with
    one key cannot both create a batch: the second gets 409 while the first is running.

    An answer from the store (replay, 409, 422) is still a request by that key: the key is checked
    first (a revoked key reads nothing back) and the request counts against its rate limit, whose
    headers the replay carries like any other response.
    """

    def __init__(self, app: ASGIApp, service_getter: Any) -> None:
        self.app, self.service_getter = app, service_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        idem_key = headers.get(b"idempotency-key")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if scope["type"] != "http" or scope["method"] != "POST" or not idem_key or not auth.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        token = auth[7:].strip()
        service = self.service_getter()
        checked = scope.get("state", {}).get("api_key")  # AuthFirst checked it when the request has a body
        if checked is None and await run_in_threadpool(repo.find_key, service.db, token) is None:
            # No valid key: nothing to remember; the route answers 401 without the body being buffered here.
            await self.app(scope, receive, send)
            return
        idem = idem_key.decode("latin-1").strip()
        if not 1 <= len(idem) <= 255:
            await problem(400, "Idempotency-Key must be 1 to 255 characters", code="invalid_idempotency_key")(
                scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        digest = hashlib.sha256()
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"),
                     headers.get(b"content-type", b"").decode("latin-1")):
            digest.update(part.encode() + b"\0")
        digest.update(bytes(body))
        request_hash = digest.hexdigest()
        key_hash = repo.hash_key(token)
        ttl = timedelta(seconds=service.settings.api.idempotency_ttl_s)
        existing = await run_in_threadpool(repo.idempotency_begin, service.db, key_hash, idem, request_hash, ttl)
        if existing is not None:
            denied = await self._authenticate(scope)
            if denied is not None:
                await denied(scope, receive, send)
                return
            if existing.request_hash != request_hash:
                response = problem(422, f"Idempotency-Key {idem!r} was already used with a different request; "
                                   "use a new key for a new request", code="idempotency_key_reused")
            elif existing.status_code is None:
                response = problem(409, f"a request with Idempotency-Key {idem!r} is still being processed; "
                                   "retry shortly", code="idempotency_in_progress", headers={"Retry-After": "1"})
            else:
                await send({"type": "http.response.start", "status": existing.status_code, "headers": [
                    (b"content-type", (existing.content_type or "application/json").encode()),
                    (b"content-length", str(len(existing.body or b"")).encode()),
                    (b"idempotent-replayed", b"true"),
                ]})
                await send({"type": "http.response.body", "body": existing.body or b""})
                return
            await response(scope, receive, send)
            return

        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        status = 500
        content_type = None
        captured = bytearray()

        async def capture_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            if status < 500 and status not in (401, 409, 429):
                await run_in_threadpool(repo.idempotency_finish, service.db, key_hash, idem, status, content_type,
                                        bytes(captured))
            else:
                await run_in_threadpool(repo.idempotency_abandon, service.db, key_hash, idem)

    @staticmethod
    async def _authenticate(scope: Scope) -> Response | None:
        """The route's own key check (validity, rate limit, rate headers); the problem when it fails."""
        try:
            await authenticate(Request(scope))
        except ApiProblem as exc:
            return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)
        return None
