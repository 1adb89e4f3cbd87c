"""API conventions every endpoint shares: RFC 9457 problem details for every error, rate-limit
headers, Idempotency-Key, robustness against hostile input, health, readiness and OpenAPI.

Limits are tested with fresh keys (``fresh_key``) so no test depends on another's rate-limit window
or open batches; the session's ``key_tiny`` is left alone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.api.conftest import SIMPLE_HTML, Api, assert_problem, create_template, wait_for_batch

from pressrun.api import create_app
from pressrun.db import repo

pytestmark = pytest.mark.chromium

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FIVE_MB = 5 * 2**20


# --- helpers ------------------------------------------------------------------------------------


def fresh_key(api: Api, plan: str = "default") -> str:
    """A new key in a new workspace: its own rate-limit window, batches and idempotency keys."""
    key, _ = repo.create_key(api.service.db, name=f"conventions-{uuid.uuid4().hex[:8]}", plan=plan)
    return key




def assert_rate_headers(response: httpx.Response, limit: int) -> int:
    for name in RATE_HEADERS:
        assert name in response.headers, f"{name} missing on {response.status_code}: {dict(response.headers)}"
    assert int(response.headers["X-RateLimit-Limit"]) == limit
    remaining = int(response.headers["X-RateLimit-Remaining"])
    assert 0 <= remaining < limit
    reset = int(response.headers["X-RateLimit-Reset"])
    now = time.time()
    assert now - 2 <= reset <= now + 61, (reset, now)  # epoch seconds, inside the one-minute window
    return remaining


def default_limit(api: Api) -> int:
    return api.service.rate_limit("default").amount


async def batch_total(api: Api, key: str) -> int:
    response = await api.client.get("/templates/batch", headers=api.auth(key))
    assert response.status_code == 200, response.text
    return response.json()["total"]


async def health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.fixture(scope="module")
async def raw_client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same service whose client reports a crash as the 500 the server would
    send, instead of raising it into the test."""
    app = create_app(api.service, manage_service=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://pressrun.test", timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
async def template(api: Api) -> dict:
    return await create_template(api, name="conventions")


@pytest.fixture(scope="module")
async def finished_batch(api: Api, template: dict) -> str:
    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                      json={"variableSets": [{"title": "done"}]}, headers=api.auth())
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert done["status"] == "completed", done
    return done["batchId"]


# --- 400 ----------------------------------------------------------------------------------------


async def test_400_malformed_json_on_create_template(api: Api):
    response = await api.client.post("/templates", content=b'{"name": "t", "html": ',
                                     headers={**api.auth(), "Content-Type": "application/json"})
    body = assert_problem(response, 400, "malformed_json")
    assert "JSON" in body["detail"]


async def test_400_malformed_json_on_batch_render(api: Api, template: dict):
    response = await api.client.post(f"/templates/{template['uid']}/batch-render", content=b'{"variableSets": [',
                                     headers={**api.auth(), "Content-Type": "application/json"})
    body = assert_problem(response, 400, "malformed_json")
    assert "JSON" in body["detail"]


async def test_malformed_json_from_an_unauthenticated_client_is_401(api: Api, template: dict):
    """Authentication comes before parsing: no key → 401, whatever the body."""
    for path in ("/templates", f"/templates/{template['uid']}/batch-render"):
        response = await api.client.post(path, content=b"{oops", headers={"Content-Type": "application/json"})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- 401 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    None,
    "Basic {key}",
    "Token {key}",
    "Bearer ",
    "Bearer pr_thisKeyWasNeverIssued0000000000000000",
], ids=["no-header", "basic-scheme", "token-scheme", "empty-bearer", "unknown-key"])
async def test_401_problem_with_www_authenticate(api: Api, header: str | None):
    headers = {"Authorization": header.format(key=api.key_a)} if header else {}
    response = await api.client.get("/templates", headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.key_a not in response.text  # the key is never echoed back
    assert "Bearer" in body["detail"] or "not valid" in body["detail"]
    for name in RATE_HEADERS:
        assert name not in response.headers  # no key, no rate window to report


async def test_401_for_a_revoked_key(api: Api):
    key, record = repo.create_key(api.service.db, name="to revoke", plan="default")
    assert (await api.client.get("/templates", headers=api.auth(key))).status_code == 200
    assert repo.revoke_key(api.service.db, record.prefix) == 1
    for method, path in (("GET", "/templates"), ("POST", "/templates")):
        response = await api.client.request(method, path, json={"name": "t", "html": "x"}, headers=api.auth(key))
        body = assert_problem(response, 401, "unauthorized")
        assert "revoked" in body["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # The other keys are unaffected.
    assert (await api.client.get("/templates", headers=api.auth())).status_code == 200


# --- 404 ----------------------------------------------------------------------------------------


async def test_404_unknown_template_uid(api: Api):
    for method, path in (("GET", "/templates/tpl_doesnotexist"),
                         ("POST", "/templates/tpl_doesnotexist/batch-render")):
        response = await api.client.request(method, path, json={"variableSets": [{}]}, headers=api.auth())
        body = assert_problem(response, 404, "template_not_found")
        assert "tpl_doesnotexist" in body["detail"]


async def test_404_unknown_template_of_another_workspace(api: Api, template: dict):
    response = await api.client.get(f"/templates/{template['uid']}", headers=api.auth(api.key_b))
    assert_problem(response, 404, "template_not_found")


async def test_404_unknown_batch(api: Api):
    response = await api.client.get("/templates/batch/batch_nope/results", headers=api.auth())
    body = assert_problem(response, 404, "batch_not_found")
    assert "batch_nope" in body["detail"]


async def test_404_unknown_route(api: Api):
    for headers in ({}, api.auth()):
        response = await api.client.get("/no/such/route", headers=headers)
        assert_problem(response, 404, "not_found")


# --- 409 ----------------------------------------------------------------------------------------


async def test_409_cancel_a_finished_batch(api: Api, finished_batch: str):
    response = await api.client.post(f"/templates/batch/{finished_batch}/cancel", headers=api.auth())
    body = assert_problem(response, 409, "batch_finished")
    assert finished_batch in body["detail"] and "completed" in body["detail"]
    results = await api.client.get(f"/templates/batch/{finished_batch}/results", headers=api.auth())
    assert results.json()["status"] == "completed"  # nothing changed


async def test_409_retry_with_no_failed_items(api: Api, finished_batch: str):
    response = await api.client.post(f"/templates/batch/{finished_batch}/retry", headers=api.auth())
    body = assert_problem(response, 409, "nothing_to_retry")
    assert "no failed items" in body["detail"]


# --- 413 ----------------------------------------------------------------------------------------


async def test_413_batch_over_the_plans_item_limit(api: Api):
    key = fresh_key(api, plan="tiny")
    tpl = await create_template(api, key)
    response = await api.client.post(f"/templates/{tpl['uid']}/batch-render",
                                     json={"variableSets": [{"title": str(i)} for i in range(6)]},
                                     headers=api.auth(key))
    body = assert_problem(response, 413, "batch_too_large")
    assert "5" in body["detail"] and "tiny" in body["detail"]
    assert body["limit"] == 5
    assert await batch_total(api, key) == 0  # nothing was written


# --- 415 ----------------------------------------------------------------------------------------


async def test_415_batch_render_with_text_plain(api: Api, template: dict):
    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                     content=b'{"variableSets": [{}]}',
                                     headers={**api.auth(), "Content-Type": "text/plain"})
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "text/plain" in body["detail"] and "application/json" in body["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", None])
async def test_415_create_template_without_a_json_body(api: Api, raw_client: httpx.AsyncClient,
                                                       content_type: str | None):
    headers = {**api.auth(), **({"Content-Type": content_type} if content_type else {})}
    response = await raw_client.post("/templates", content=b'{"name": "t", "html": "x"}', headers=headers)
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "application/json" in body["detail"]


# --- 422 ----------------------------------------------------------------------------------------


async def test_422_concurrency_out_of_range(api: Api, template: dict):
    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                     json={"variableSets": [{}], "concurrency": 11}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    error = body["errors"][0]
    assert error["field"] == "concurrency" and error["value"] == 11
    assert "10" in error["message"] and "concurrency" in body["detail"]


async def test_422_width_not_a_number(api: Api):
    response = await api.client.post("/templates", json={"name": "t", "html": "x", "width": "abc"},
                                     headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "width" and body["errors"][0]["value"] == "abc"
    assert "integer" in body["errors"][0]["message"]


@pytest.mark.parametrize("where", ["template", "batch"])
async def test_422_unknown_format_lists_the_valid_ones(api: Api, template: dict, where: str):
    if where == "template":
        response = await api.client.post("/templates", json={"name": "t", "html": "x", "format": "bmp"},
                                         headers=api.auth())
    else:
        response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                         json={"variableSets": [{}], "format": "bmp"}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    error = body["errors"][0]
    assert error["field"] == "format" and error["value"] == "bmp"
    for valid in ("png", "jpeg", "webp", "pdf"):
        assert valid in error["message"]


async def test_422_fields_are_named_in_camel_case(api: Api, template: dict):
    response = await api.client.post(
        "/templates",
        json={"name": "t", "html": "x", "sampleData": "nope", "columnTypes": {"price": "money"},
              "pdf": {"pageSize": "napkin", "marginMm": -1}},
        headers=api.auth(),
    )
    body = assert_problem(response, 422, "validation_error")
    by_field = {e["field"]: e for e in body["errors"]}
    assert set(by_field) == {"sampleData", "columnTypes", "pdf.pageSize", "pdf.marginMm"}, by_field
    assert "a4" in by_field["pdf.pageSize"]["message"] and "napkin" in by_field["pdf.pageSize"]["message"]
    assert "number" in by_field["columnTypes"]["message"] and "money" in by_field["columnTypes"]["message"]
    assert "3 more" in body["detail"]

    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                     json={"variableSets": [{}], "webhookUrl": "not a url", "zip": "maybe"},
                                     headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"webhookUrl", "zip"}


async def test_422_unknown_field_is_named(api: Api):
    response = await api.client.post("/templates", json={"name": "t", "html": "x", "colour": "red"},
                                     headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "colour"


async def test_422_missing_field_is_named_without_a_value(api: Api):
    response = await api.client.post("/templates", json={"name": "t"}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [{"field": "html", "message": "Field required"}]


async def test_422_empty_batch_says_the_limit(api: Api, template: dict):
    limit = api.service.plan("default").max_batch_items
    response = await api.client.post(f"/templates/{template['uid']}/batch-render", json={"variableSets": []},
                                     headers=api.auth())
    body = assert_problem(response, 422, "empty_batch")
    assert "variableSets" in body["detail"] and str(limit) in body["detail"]
    assert body["limit"] == limit


# --- 429 ----------------------------------------------------------------------------------------


async def test_429_past_the_rate_limit(api: Api):
    key = fresh_key(api, plan="tiny")
    remaining = []
    for _ in range(5):
        response = await api.client.get("/templates", headers=api.auth(key))
        assert response.status_code == 200, response.text
        remaining.append(assert_rate_headers(response, 5))
    assert remaining == [4, 3, 2, 1, 0]
    response = await api.client.get("/templates", headers=api.auth(key))
    body = assert_problem(response, 429, "rate_limited")
    assert_rate_headers(response, 5)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "5" in body["detail"] and "tiny" in body["detail"]
    # Another key is not limited by this one's window.
    assert (await api.client.get("/templates", headers=api.auth())).status_code == 200


async def test_429_too_many_open_batches(api: Api):
    key = fresh_key(api, plan="tiny")
    tpl = await create_template(api, key, width=800, height=800)
    url = f"/templates/{tpl['uid']}/batch-render"
    first = await api.client.post(url, json={"variableSets": [{"title": str(i)} for i in range(5)],
                                             "concurrency": 1}, headers=api.auth(key))
    assert first.status_code == 202, first.text
    second = await api.client.post(url, json={"variableSets": [{"title": "again"}]}, headers=api.auth(key))
    body = assert_problem(second, 429, "too_many_batches")
    assert body["limit"] == 1 and "1" in body["detail"] and "tiny" in body["detail"]
    assert int(second.headers["Retry-After"]) >= 1
    assert_rate_headers(second, 5)
    # Only the first batch exists; clean it up (the cancel is this key's 4th request of 5).
    cancel = await api.client.post(f"/templates/batch/{first.json()['batchId']}/cancel", headers=api.auth(key))
    assert cancel.status_code in (200, 409), cancel.text


# --- rate-limit headers -------------------------------------------------------------------------


async def test_rate_headers_on_every_authenticated_response(api: Api, template: dict, finished_batch: str):
    key = fresh_key(api)
    auth = api.auth(key)
    tpl = await create_template(api, key)
    requests: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/templates", {}, 200),
        ("GET", f"/templates/{tpl['uid']}", {}, 200),
        ("GET", "/templates/tpl_missing", {}, 404),
        ("GET", f"/templates/{template['uid']}", {}, 404),  # another workspace's template
        ("GET", "/templates/batch/batch_missing/results", {}, 404),
        ("POST", "/templates", {"json": {"name": "t", "html": "x", "width": "abc"}}, 422),
        ("POST", f"/templates/{tpl['uid']}/batch-render", {"json": {"variableSets": []}}, 422),
        ("POST", f"/templates/{tpl['uid']}/batch-render",
         {"content": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/templates", {"content": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", f"/templates/{tpl['uid']}/batch-render",
         {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", f"/templates/{tpl['uid']}/batch-render", {"json": {"variableSets": [{"title": "ok"}]}}, 202),
    ]
    previous = None
    for method, path, kwargs, status in requests:
        headers = {**auth, **kwargs.pop("headers", {})}
        response = await api.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        remaining = assert_rate_headers(response, default_limit(api))
        if previous is not None:
            assert remaining == previous - 1, (method, path, status)
        previous = remaining


# --- Idempotency-Key ----------------------------------------------------------------------------


async def test_idempotency_same_key_same_body_replays(api: Api):
    key = fresh_key(api)
    tpl = await create_template(api, key)
    url = f"/templates/{tpl['uid']}/batch-render"
    payload = {"variableSets": [{"title": "once"}]}
    headers = {**api.auth(key), "Idempotency-Key": "order-1"}
    assert await batch_total(api, key) == 0
    first = await api.client.post(url, json=payload, headers=headers)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    second = await api.client.post(url, json=payload, headers=headers)
    assert second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["content-type"] == first.headers["content-type"]
    assert await batch_total(api, key) == 1


async def test_idempotency_same_key_different_body_is_422(api: Api):
    key = fresh_key(api)
    tpl = await create_template(api, key)
    url = f"/templates/{tpl['uid']}/batch-render"
    headers = {**api.auth(key), "Idempotency-Key": "order-2"}
    first = await api.client.post(url, json={"variableSets": [{"title": "a"}]}, headers=headers)
    assert first.status_code == 202, first.text
    other = await api.client.post(url, json={"variableSets": [{"title": "b"}]}, headers=headers)
    body = assert_problem(other, 422, "idempotency_key_reused")
    assert "order-2" in body["detail"]
    assert await batch_total(api, key) == 1
    # The original request still replays.
    again = await api.client.post(url, json={"variableSets": [{"title": "a"}]}, headers=headers)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


async def test_idempotency_is_scoped_per_api_key(api: Api):
    key_1, key_2 = fresh_key(api), fresh_key(api)
    uid_1 = (await create_template(api, key_1))["uid"]
    uid_2 = (await create_template(api, key_2))["uid"]
    payload = {"variableSets": [{"title": "shared"}]}
    one = await api.client.post(f"/templates/{uid_1}/batch-render", json=payload,
                                headers={**api.auth(key_1), "Idempotency-Key": "shared-key"})
    two = await api.client.post(f"/templates/{uid_2}/batch-render", json=payload,
                                headers={**api.auth(key_2), "Idempotency-Key": "shared-key"})
    assert one.status_code == two.status_code == 202, (one.text, two.text)
    assert "Idempotent-Replayed" not in two.headers
    assert one.json()["batchId"] != two.json()["batchId"]
    assert await batch_total(api, key_1) == 1 and await batch_total(api, key_2) == 1
    # Same path and body from two keys in ONE workspace: still two requests, not a replay.
    key_3, _ = repo.create_key(api.service.db, name="second key of workspace 2", plan="default",
                               workspace_uid=repo.find_key(api.service.db, key_2).workspace_uid)  # type: ignore[union-attr]
    three = await api.client.post(f"/templates/{uid_2}/batch-render", json=payload,
                                  headers={**api.auth(key_3), "Idempotency-Key": "shared-key"})
    assert three.status_code == 202 and "Idempotent-Replayed" not in three.headers
    assert three.json()["batchId"] != two.json()["batchId"]


async def test_idempotency_replays_a_validation_failure(api: Api):
    key = fresh_key(api)
    tpl = await create_template(api, key)
    url = f"/templates/{tpl['uid']}/batch-render"
    headers = {**api.auth(key), "Idempotency-Key": "bad-1"}
    payload = {"variableSets": [{}], "concurrency": 11}
    first = await api.client.post(url, json=payload, headers=headers)
    assert_problem(first, 422, "validation_error")
    second = await api.client.post(url, json=payload, headers=headers)
    assert_problem(second, 422, "validation_error")
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert await batch_total(api, key) == 0


async def test_idempotency_concurrent_duplicates_create_one_batch(api: Api):
    key = fresh_key(api)
    tpl = await create_template(api, key)
    url = f"/templates/{tpl['uid']}/batch-render"
    headers = {**api.auth(key), "Idempotency-Key": "race-1"}
    payload = {"variableSets": [{"title": "race"}]}
    responses = await asyncio.gather(*(api.client.post(url, json=payload, headers=headers) for _ in range(4)))
    accepted = [r for r in responses if r.status_code == 202]
    assert accepted, [r.text for r in responses]
    assert len({r.json()["batchId"] for r in accepted}) == 1
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_in_progress")
            assert response.headers["Retry-After"]
        else:
            assert response.status_code == 202
    assert await batch_total(api, key) == 1


async def test_idempotency_replay_needs_a_valid_key(api: Api):
    """A revoked key must not read its cached responses back."""
    key, record = repo.create_key(api.service.db, name="replay then revoke", plan="default")
    headers = {**api.auth(key), "Idempotency-Key": "tpl-1"}
    payload = {"name": "secret", "html": SIMPLE_HTML}
    first = await api.client.post("/templates", json=payload, headers=headers)
    assert first.status_code == 201, first.text
    repo.revoke_key(api.service.db, record.prefix)
    replay = await api.client.post("/templates", json=payload, headers=headers)
    assert_problem(replay, 401, "unauthorized")
    assert first.json()["uid"] not in replay.text
    other = await api.client.post("/templates", json={**payload, "name": "other"}, headers=headers)
    assert_problem(other, 401, "unauthorized")


async def test_idempotency_replay_counts_against_the_rate_limit(api: Api):
    key = fresh_key(api, plan="tiny")
    headers = {**api.auth(key), "Idempotency-Key": "tpl-tiny"}
    payload = {"name": "t", "html": SIMPLE_HTML}
    first = await api.client.post("/templates", json=payload, headers=headers)
    assert first.status_code == 201
    assert first.headers["X-RateLimit-Remaining"] == "4"
    for remaining in (3, 2, 1, 0):
        replay = await api.client.post("/templates", json=payload, headers=headers)
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert assert_rate_headers(replay, 5) == remaining
    limited = await api.client.post("/templates", json=payload, headers=headers)
    assert_problem(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"]


async def test_idempotency_key_too_long_is_400(api: Api):
    response = await api.client.post("/templates", json={"name": "t", "html": "x"},
                                     headers={**api.auth(), "Idempotency-Key": "k" * 256})
    assert_problem(response, 400, "invalid_idempotency_key")


# --- bad input never takes the server down ------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"variableSets": [' + b"[" * depth + b"]" * depth + b"]}"


BAD_JSON_BODIES = {
    "truncated": b'{"variableSets": [{"title": "a"}',
    "not-json": b"variableSets=1",
    "empty": b"",
    "invalid-utf8": b'{"variableSets": [{"title": "\xff\xfe"}]}',
    "trailing-garbage": b'{"variableSets": [{}]} {}',
}


@pytest.mark.parametrize("body", BAD_JSON_BODIES.values(), ids=BAD_JSON_BODIES.keys())
@pytest.mark.parametrize("where", ["template", "batch"])
async def test_malformed_json_is_400(api: Api, raw_client: httpx.AsyncClient, template: dict, where: str,
                                     body: bytes):
    path = "/templates" if where == "template" else f"/templates/{template['uid']}/batch-render"
    response = await raw_client.post(path, content=body,
                                     headers={**api.auth(), "Content-Type": "application/json"})
    if where == "template" and body == b"":
        assert_problem(response, 422, "validation_error")  # FastAPI: no body at all is a missing field
    else:
        assert_problem(response, 400, "malformed_json")
    await health_ok(raw_client)


@pytest.mark.parametrize("payload, field", [
    ({"name": "t", "html": 123}, "html"),
    ({"name": ["t"], "html": "x"}, "name"),
    ({"name": "t", "html": "x", "width": None}, "width"),
    ({"name": "t", "html": "x", "sampleData": [1, 2]}, "sampleData"),
    ({"name": "t", "html": "x", "pdf": "a4"}, "pdf"),
], ids=["html-int", "name-list", "width-null", "sample-data-list", "pdf-string"])
async def test_wrong_types_on_create_template(api: Api, raw_client: httpx.AsyncClient, payload: dict, field: str):
    response = await raw_client.post("/templates", json=payload, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == field
    await health_ok(raw_client)


@pytest.mark.parametrize("payload, field", [
    ({"variableSets": "x"}, "variableSets"),
    ({"variableSets": [1, 2]}, "variableSets[0]"),
    ({"variableSets": None}, "variableSets"),
    ({"variableSets": {"title": "a"}}, "variableSets"),
    ({}, "variableSets"),
    ({"variableSets": [{}], "quality": "high"}, "quality"),
], ids=["string", "ints", "null", "object", "missing", "quality-string"])
async def test_wrong_types_on_batch_render(api: Api, raw_client: httpx.AsyncClient, template: dict,
                                           payload: dict, field: str):
    response = await raw_client.post(f"/templates/{template['uid']}/batch-render", json=payload,
                                     headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == field
    await health_ok(raw_client)


@pytest.mark.parametrize("where", ["template", "batch"])
async def test_non_object_json_body(api: Api, raw_client: httpx.AsyncClient, template: dict, where: str):
    path = "/templates" if where == "template" else f"/templates/{template['uid']}/batch-render"
    for body in (b"[1]", b"null", b'"text"', b"42"):
        response = await raw_client.post(path, content=body,
                                         headers={**api.auth(), "Content-Type": "application/json"})
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "body"
    await health_ok(raw_client)


@pytest.mark.parametrize("field", ["name", "html"])
async def test_5mb_string_is_422_without_echoing_it(api: Api, raw_client: httpx.AsyncClient, field: str):
    payload = {"name": "t", "html": "x", field: "y" * FIVE_MB}
    response = await raw_client.post("/templates", json=payload, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == field
    assert len(response.content) < 10_000
    assert body["detail"].startswith(field)
    await health_ok(raw_client)


def huge_payloads(uid: str) -> list[tuple[str, dict[str, Any], str]]:
    big = "z" * FIVE_MB
    return [
        ("/templates", {"name": "t", "html": "x", big: 1}, "unknown field name"),
        ("/templates", {"name": "t", "html": "x", "columnTypes": {big: "money"}}, "columnTypes column"),
        ("/templates", {"name": "t", "html": "x", "columnTypes": {"price": big}}, "columnTypes type"),
        ("/templates", {"name": "t", "html": "x", "columnTypes": {big: 1}}, "columnTypes key path"),
        ("/templates", {"name": "t", "html": "x", "pdf": {"pageSize": big}}, "pdf.pageSize"),
        ("/templates", {"name": "t", "html": "x", "locale": big}, "locale"),
        ("/templates", {"name": "t", "html": "{% " + "w" * 1_900_000 + " %}"}, "template syntax error"),
        ("/image", {"html": "x", "selector": big}, "image selector"),
        ("/pdf/render", {"html": "x", "pageSize": big}, "pdf pageSize"),
        (f"/templates/{uid}/batch-render", {"variableSets": [{}], big: 1}, "batch unknown field"),
        (f"/templates/{uid}/batch-render", {"variableSets": [big]}, "batch variable set"),
        (f"/templates/{uid}/batch-render", {"variableSets": [{}], "webhookUrl": big}, "batch webhookUrl"),
        (f"/templates/{uid}/batch-render", {"variableSets": [{}], "filename": big}, "batch filename"),
        (f"/templates/{uid}/batch-render", {"variableSets": [{}], "filename": "{{ " + "v" * 400}, "filename syntax"),
    ]


async def test_huge_values_anywhere_are_never_echoed(api: Api, raw_client: httpx.AsyncClient, template: dict):
    """Whatever part of the request is huge (a field name, a dict key, a value a custom validator
    quotes, a template the compiler quotes), the problem stays small."""
    failures = []
    for path, payload, label in huge_payloads(template["uid"]):
        response = await raw_client.post(path, json=payload, headers=api.auth())
        if response.status_code != 422 or len(response.content) >= 10_000:
            failures.append((label, response.status_code, len(response.content)))
            continue
        assert_problem(response, 422)
    assert not failures, failures
    await health_ok(raw_client)


async def test_deeply_nested_json_on_create_template(api: Api, raw_client: httpx.AsyncClient):
    response = await raw_client.post("/templates", content=nested(100_000),
                                     headers={**api.auth(), "Content-Type": "application/json"})
    assert_problem(response, 400, "malformed_json")
    await health_ok(raw_client)


async def test_deeply_nested_json_on_batch_render(api: Api, raw_client: httpx.AsyncClient, template: dict):
    response = await raw_client.post(f"/templates/{template['uid']}/batch-render", content=nested(100_000),
                                     headers={**api.auth(), "Content-Type": "application/json"})
    await health_ok(raw_client)
    assert_problem(response, 400, "malformed_json")


async def test_moderately_nested_variables_are_accepted(api: Api, template: dict):
    """Nesting within what JSON parsers handle is data, not an attack."""
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"a": deep}
    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                     json={"variableSets": [{"title": "nested", "deep": deep}]},
                                     headers=api.auth())
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert done["status"] == "completed", done


async def test_huge_integer_on_create_template(api: Api, raw_client: httpx.AsyncClient):
    body = b'{"name": "t", "html": "x", "width": ' + b"9" * 5000 + b"}"
    response = await raw_client.post("/templates", content=body,
                                     headers={**api.auth(), "Content-Type": "application/json"})
    assert_problem(response, 400, "malformed_json")
    await health_ok(raw_client)


async def test_huge_integer_on_batch_render(api: Api, raw_client: httpx.AsyncClient, template: dict):
    body = b'{"variableSets": [{"n": ' + b"9" * 5000 + b"}]}"
    response = await raw_client.post(f"/templates/{template['uid']}/batch-render", content=body,
                                     headers={**api.auth(), "Content-Type": "application/json"})
    await health_ok(raw_client)
    assert_problem(response, 400, "malformed_json")


async def test_csv_with_bad_encoding_names_the_line(api: Api, raw_client: httpx.AsyncClient, template: dict):
    key = fresh_key(api)
    tpl = await create_template(api, key)
    response = await raw_client.post(f"/templates/{tpl['uid']}/batch-render", content=b"name\n\xff\xfe\xfa\n",
                                     headers={**api.auth(key), "Content-Type": "text/csv"})
    body = assert_problem(response, 422, "data_error")
    assert body["line"] == 2 and "line 2" in body["detail"]
    assert "UTF-8" in body["detail"]
    assert ".upload" not in body["detail"] and str(api.service.settings.data_dir) not in body["detail"]
    assert await batch_total(api, key) == 0
    await health_ok(raw_client)


@pytest.mark.parametrize("content", [b"this is not a zip", b"PK\x03\x04 truncated zip", b""],
                         ids=["text", "truncated-zip", "empty"])
async def test_xlsx_that_is_not_a_workbook(api: Api, raw_client: httpx.AsyncClient, template: dict,
                                           content: bytes):
    response = await raw_client.post(f"/templates/{template['uid']}/batch-render", content=content,
                                     headers={**api.auth(), "Content-Type": XLSX})
    body = assert_problem(response, 422)
    assert body["code"] in ("data_error", "empty_batch")
    assert ".upload" not in body["detail"]
    await health_ok(raw_client)


async def test_a_normal_render_still_works_after_bad_input(api: Api, raw_client: httpx.AsyncClient,
                                                           template: dict):
    response = await raw_client.post(f"/templates/{template['uid']}/batch-render",
                                     json={"variableSets": [{"title": "fine"}, {"title": "also fine"}]},
                                     headers=api.auth())
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert done["status"] == "completed" and done["completedCount"] == 2
    image = await raw_client.post(f"/templates/{template['uid']}/render", json={"variables": {"title": "sync"}},
                                  headers={**api.auth(), "Accept": "image/png"})
    assert image.status_code == 200, image.text
    assert image.content.startswith(b"\x89PNG")


# --- health, readiness, OpenAPI -----------------------------------------------------------------


async def test_health(api: Api):
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"].startswith("application/json")


async def test_ready(api: Api):
    response = await api.client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "storage": "ok", "browser": "ok"}


async def test_openapi_lists_the_main_paths(api: Api):
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "pressrun"
    paths = spec["paths"]
    expected = {
        "/templates": {"get", "post"},
        "/templates/{uid}": {"get", "put", "delete"},
        "/templates/{uid}/batch-render": {"post"},
        "/templates/{uid}/render": {"post"},
        "/templates/batch": {"get"},
        "/templates/batch/{batch_id}/results": {"get"},
        "/templates/batch/{batch_id}/cancel": {"post"},
        "/templates/batch/{batch_id}/retry": {"post"},
        "/templates/batch/{batch_id}/download": {"get"},
        "/image": {"post"},
        "/pdf/render": {"post"},
        "/health": {"get"},
        "/ready": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert not any(p.startswith("/files") for p in paths)  # signed downloads stay out of the docs
    schemas = spec["components"]["schemas"]
    assert {"sampleData", "columnTypes"} <= set(schemas["TemplateIn"]["properties"])  # camelCase, as on the wire


async def test_docs_is_html(api: Api):
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower() and "/openapi.json" in response.text
