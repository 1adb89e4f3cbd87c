"""Bearer-key authentication and per-key rate limits (the `limits` library, moving window)."""

from __future__ import annotations

import math
import time

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pressrun.api.problems import ApiProblem, problem
from pressrun.db import repo
from pressrun.db.repo import ApiKey


async def authenticate(request: Request) -> ApiKey:
    """The request's API key, checked and counted against its plan's rate limit once per request
    (AuthFirst may have done it before the body was read; the route's dependency then reuses it)."""
    checked = getattr(request.state, "api_key", None)
    if checked is not None:
        return checked
    service = request.app.state.service
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "send an API key as 'Authorization: Bearer <key>'", code="unauthorized",
                         headers={"WWW-Authenticate": "Bearer"})
    key = await run_in_threadpool(repo.find_key, service.db, token.strip())
    if key is None:
        raise ApiProblem(401, "the API key is not valid (unknown or revoked)", code="unauthorized",
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    limit = service.rate_limit(key.plan)
    allowed = service.limiter.hit(limit, key.key_hash)
    reset_at, remaining = service.limiter.get_window_stats(limit, key.key_hash)
    headers = {
        "X-RateLimit-Limit": str(limit.amount),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(math.ceil(reset_at)),
    }
    request.state.rate_headers = headers
    if not allowed:
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiProblem(
            429,
            f"rate limit of {limit.amount} requests per {limit.get_expiry()} s for this key's plan "
            f"({key.plan!r}) exceeded; retry in {retry_after} s",
            code="rate_limited",
            headers={**headers, "Retry-After": str(retry_after)},
        )
    request.state.api_key = key
    return key


async def authenticate_first(request: Request) -> JSONResponse | None:
    """FastAPI reads and parses a JSON body before it runs the route's dependencies, so a body it
    cannot parse would be answered before the key is checked: without the rate-limit headers, not
    counted against the limit, and with 400 instead of 401 for a client with no key. Run the key
    check here for such routes; returns the 401/429 problem when it fails."""
    if getattr(request.state, "api_key", None) is not None:
        return None
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or not any(d.call is authenticate for d in dependant.dependencies):
        return None
    try:
        await authenticate(request)
    except ApiProblem as exc:
        return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)
    return None
