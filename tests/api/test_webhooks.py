"""Webhooks against a real HTTP receiver on loopback: signatures, retries with one delivery id,
the delivery log, disabling after repeated failures, event filters, the address policy, big batches."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from tests.api.conftest import Api, create_template, wait_for_batch

from pressrun.webhooks import InvalidSignature, sign, verify
from pressrun.webhooks.policy import RefusedUrl, check_url
from pressrun.webhooks.sender import backoff_s, retryable

# Tests that use the `api` fixture are marked chromium by tests/conftest.py; the pure ones here are not.


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that answers with the next scripted status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    answered: int = 0

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(dict(self.headers.items()), body))
                time.sleep(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered += 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, event: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("X-Pressrun-Event") == event]

    async def wait_for(self, count: int, event: str | None = None, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.of(event) if event else self.received
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.received)} requests, wanted {count} {event or ''}")

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


async def subscribe(api: Api, url: str, events: list[str], key: str | None = None) -> dict:
    response = await api.client.post("/webhook-subscriptions", json={"url": url, "events": events},
                                     headers=api.auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def unsubscribe(api: Api, uid: str, key: str | None = None) -> None:
    assert (await api.client.delete(f"/webhook-subscriptions/{uid}", headers=api.auth(key))).status_code == 204


async def run_batch(api: Api, rows: list[dict], key: str | None = None, **options: object) -> dict:
    template = await create_template(api, key=key, format="jpeg")
    response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                     json={"variableSets": rows, **options}, headers=api.auth(key))
    assert response.status_code == 202, response.text
    return await wait_for_batch(api, response.json()["batchId"], key=key)


def test_verify_accepts_the_right_secret_and_refuses_others():
    body = b'{"event":"batch.completed"}'
    header = sign(body, "whsec_right")
    verify(body, header, "whsec_right")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(body, header, "whsec_wrong")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(body + b" ", header, "whsec_right")
    old = sign(body, "whsec_right", timestamp=int(time.time()) - 3600)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(body, old, "whsec_right")
    with pytest.raises(InvalidSignature):
        verify(body, None, "whsec_right")


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    from pressrun.settings import WebhookSettings

    settings = WebhookSettings()
    delays = [backoff_s(n, settings) for n in range(1, 8)]
    assert 0.8 * 180 <= delays[0] <= 1.2 * 180
    assert all(later > earlier for earlier, later in zip(delays[:4], delays[1:5], strict=True))
    assert max(delays) <= 1.2 * settings.retry_max_s
    total_h = sum(min(settings.retry_max_s, settings.retry_min_s * 2**i) for i in range(settings.max_attempts - 1))
    assert 5 <= total_h / 3600 <= 7, "about 8 attempts over about 6 hours by default"
    assert [retryable(s) for s in (None, 429, 500, 503, 400, 404, 410)] == [True, True, True, True, False, False, False]


async def test_batch_completed_is_signed_and_carries_every_result(api: Api, receiver: Receiver):
    sub = await subscribe(api, receiver.url, ["batch.completed"])
    assert sub["secret"].startswith("whsec_")
    try:
        done = await run_batch(api, [{"title": "a"}, {"title": "b"}, {"color": "red"}])
        [delivery] = await receiver.wait_for(1, "batch.completed")
        verify(delivery.body, delivery.headers["X-Pressrun-Signature"], sub["secret"])
        with pytest.raises(InvalidSignature):
            verify(delivery.body, delivery.headers["X-Pressrun-Signature"], "whsec_someone_else")
        event = delivery.json
        assert event["event"] == "batch.completed" and event["id"].startswith("evt_")
        data = event["data"]
        assert (data["batchId"], data["status"], data["totalCount"]) == (done["batchId"], "partial", 3)
        assert (data["completedCount"], data["failedCount"], data["cancelledCount"]) == (2, 1, 0)
        assert [r["index"] for r in data["results"]] == [0, 1, 2]
        assert data["results"][2]["error"]["code"] == "missing_variable"
        assert data["results"][0]["url"].startswith("http") and "/files/batches/" in data["results"][0]["url"]
        assert data["resultsUrl"].endswith(f"/templates/batch/{done['batchId']}/results")
        assert delivery.headers["X-Pressrun-Delivery-Id"].startswith("whdel_")
        assert delivery.headers["Content-Type"] == "application/json"
    finally:
        await unsubscribe(api, sub["uid"])


def without_base(url: str | None) -> str | None:
    """A file link's path and signed query. Webhooks link on the server's public base, the API on the
    base the client reached it by; everything after the base must be the same."""
    return None if url is None else urlsplit(url)._replace(scheme="", netloc="").geturl()


async def test_batch_completed_and_the_results_endpoint_agree_field_for_field(api: Api, receiver: Receiver):
    sub = await subscribe(api, receiver.url, ["*"])
    try:
        done = await run_batch(api, [{"title": "a"}, {"color": "red"}, {"title": "c"}])
        [delivery] = await receiver.wait_for(1, "batch.completed")
        renders = [*await receiver.wait_for(2, "render.completed"), *await receiver.wait_for(1, "render.failed")]
        response = await api.client.get(f"/templates/batch/{done['batchId']}/results", headers=api.auth())
        assert response.status_code == 200, response.text
        results = response.json()
        data = delivery.json["data"]
        summary = {k: v for k, v in results.items() if k not in ("offset", "limit", "results", "zipUrl")}
        assert set(summary) <= set(data)
        assert {k: data[k] for k in summary} == summary
        assert data["totalCount"] == data["totalItems"] == 3 and data["status"] == "partial"
        assert len(data["results"]) == len(results["results"]) == 3
        for sent, shown in zip(data["results"], results["results"], strict=True):
            assert {**sent, "url": without_base(sent["url"])} == {**shown, "url": without_base(shown["url"])}
        assert [r["status"] for r in data["results"]] == ["completed", "failed", "completed"]
        per_item = {r.json["data"]["index"]: r.json["data"] for r in renders}
        for shown in results["results"]:
            sent = per_item[shown["index"]]
            assert (sent["batchId"], sent["format"]) == (done["batchId"], "jpeg")
            assert {**sent, "url": without_base(sent["url"])} == {
                "batchId": done["batchId"], "format": "jpeg", **shown, "url": without_base(shown["url"])}
    finally:
        await unsubscribe(api, sub["uid"])


async def test_500_twice_then_200_is_one_delivery_id_three_times_and_three_logged_attempts(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["batch.completed"])
    try:
        receiver.statuses = [500, 500]
        await run_batch(api, [{"title": "x"}])
        deliveries = await receiver.wait_for(3, "batch.completed")
        assert len({d.headers["X-Pressrun-Delivery-Id"] for d in deliveries}) == 1
        assert len({d.body for d in deliveries}) == 1, "retries resend the same body"
        for d in deliveries:
            verify(d.body, d.headers["X-Pressrun-Signature"], sub["secret"])
        deadline = time.monotonic() + 10
        while True:
            log = (await api.client.get(f"/webhook-subscriptions/{sub['uid']}/deliveries", headers=api.auth())).json()
            if log["deliveries"] and log["deliveries"][0]["status"] == "succeeded" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        [entry] = log["deliveries"]
        assert entry["id"] == deliveries[0].headers["X-Pressrun-Delivery-Id"]
        assert entry["status"] == "succeeded" and entry["attemptCount"] == 3
        assert [a["statusCode"] for a in entry["attempts"]] == [500, 500, 200]
        assert entry["attempts"][0]["nextRetryAt"] is not None and entry["attempts"][2]["nextRetryAt"] is None
        assert all(a["latencyMs"] is not None for a in entry["attempts"])

        again = await api.client.post(f"/webhook-subscriptions/{sub['uid']}/deliveries/{entry['id']}/redeliver",
                                      headers=api.auth())
        assert again.status_code == 202
        redelivered = await receiver.wait_for(4, "batch.completed")
        assert redelivered[3].headers["X-Pressrun-Delivery-Id"] == entry["id"]
    finally:
        await unsubscribe(api, sub["uid"])


async def test_a_4xx_is_not_retried_and_repeated_failures_disable_the_subscription(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["batch.completed"])
    receiver.statuses = [400, 410]
    await run_batch(api, [{"title": "1"}])
    await receiver.wait_for(1, "batch.completed")
    await run_batch(api, [{"title": "2"}])
    await receiver.wait_for(2, "batch.completed")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = (await api.client.get(f"/webhook-subscriptions/{sub['uid']}", headers=api.auth())).json()
        if not state["active"]:
            break
        await asyncio.sleep(0.05)
    assert state["active"] is False and "2 consecutive" in state["disabledReason"]
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 2, "4xx answers are not retried"
    await run_batch(api, [{"title": "3"}])
    await asyncio.sleep(1.0)
    assert len(receiver.received) == 2, "a disabled subscription gets nothing"
    enabled = await api.client.put(f"/webhook-subscriptions/{sub['uid']}", json={"active": True}, headers=api.auth())
    assert enabled.json()["active"] is True and enabled.json()["consecutiveFailures"] == 0
    await unsubscribe(api, sub["uid"])


async def test_events_filter_and_per_item_render_events(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["render.completed", "render.failed"])
    try:
        await run_batch(api, [{"title": "ok"}, {"nope": 1}])
        await receiver.wait_for(2)
        await asyncio.sleep(0.5)
        kinds = sorted(r.headers["X-Pressrun-Event"] for r in receiver.received)
        assert kinds == ["render.completed", "render.failed"], "no batch.completed for this subscription"
        failed = receiver.of("render.failed")[0].json["data"]
        assert failed["index"] == 1 and failed["error"]["code"] == "missing_variable"
        template = await create_template(api)
        single = await api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"title": "s"}},
                                       headers=api.auth())
        assert single.status_code == 200
        await receiver.wait_for(2, "render.completed")
        assert receiver.of("render.completed")[1].json["data"]["url"].startswith("http")
    finally:
        await unsubscribe(api, sub["uid"])


async def test_batch_webhook_url_is_signed_with_the_workspace_batch_secret(api: Api, receiver):
    secret = (await api.client.get("/webhook-subscriptions/batch-secret", headers=api.auth(api.key_b))).json()["secret"]
    done = await run_batch(api, [{"title": "w"}], key=api.key_b, webhookUrl=receiver.url)
    [delivery] = await receiver.wait_for(1, "batch.completed")
    verify(delivery.body, delivery.headers["X-Pressrun-Signature"], secret)
    assert delivery.json["data"]["batchId"] == done["batchId"]
    rotated = (await api.client.post("/webhook-subscriptions/batch-secret/rotate", headers=api.auth(api.key_b))).json()
    assert rotated["secret"] != secret
    await run_batch(api, [{"title": "w2"}], key=api.key_b, webhookUrl=receiver.url)
    second = (await receiver.wait_for(2, "batch.completed"))[1]
    verify(second.body, second.headers["X-Pressrun-Signature"], rotated["secret"])
    with pytest.raises(InvalidSignature):
        verify(second.body, second.headers["X-Pressrun-Signature"], secret)


async def test_a_batch_over_1000_items_sends_results_url_instead_of_results(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["batch.completed"])
    try:
        template = await create_template(api, html="<b>{{ n }}</b>", format="jpeg", width=20, height=20)
        response = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                         json={"variableSets": [{"n": i} for i in range(1200)], "concurrency": 10},
                                         headers=api.auth())
        batch_id = response.json()["batchId"]
        # Cancel: a cancelled batch also fires batch.completed, with the same size rule.
        await asyncio.sleep(0.3)
        await api.client.post(f"/templates/batch/{batch_id}/cancel", headers=api.auth())
        [delivery] = await receiver.wait_for(1, "batch.completed", timeout_s=60)
        data = delivery.json["data"]
        assert data["status"] == "cancelled" and data["totalCount"] == 1200
        assert "results" not in data
        assert data["resultsUrl"].endswith(f"/templates/batch/{batch_id}/results")
        assert data["completedCount"] + data["failedCount"] + data["cancelledCount"] == 1200
    finally:
        await unsubscribe(api, sub["uid"])


async def test_private_addresses_are_refused_unless_allowed(api: Api, receiver):
    settings = api.service.settings.webhooks
    settings.allow_private_networks = False
    try:
        for url in (receiver.url, "http://localhost:9/x", "http://169.254.169.254/latest", "http://10.0.0.5/h"):
            response = await api.client.post("/webhook-subscriptions", json={"url": url}, headers=api.auth())
            assert response.status_code == 422, url
            assert response.json()["code"] == "webhook_url_refused" and "address" in response.json()["detail"]
        template = await create_template(api)
        refused = await api.client.post(f"/templates/{template['uid']}/batch-render",
                                        json={"variableSets": [{"title": "x"}], "webhookUrl": receiver.url},
                                        headers=api.auth())
        assert refused.status_code == 422 and refused.json()["field"] == "webhookUrl"
        # At delivery time too: a name that resolves to loopback (DNS rebinding) is refused.
        with pytest.raises(RefusedUrl, match="loopback"):
            await check_url("http://localhost:8080/hook", allow_private=False)
    finally:
        settings.allow_private_networks = True


async def test_subscriptions_are_per_workspace_and_validated(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["*"])
    try:
        assert (await api.client.get(f"/webhook-subscriptions/{sub['uid']}", headers=api.auth(api.key_b))).status_code \
            == 404
        listed = (await api.client.get("/webhook-subscriptions", headers=api.auth(api.key_b))).json()["subscriptions"]
        assert sub["uid"] not in [s["uid"] for s in listed]
        assert "secret" not in (await api.client.get(f"/webhook-subscriptions/{sub['uid']}", headers=api.auth())).json()
        bad = await api.client.post("/webhook-subscriptions", json={"url": receiver.url, "events": ["batch.done"]},
                                    headers=api.auth())
        assert bad.status_code == 422 and "batch.completed" in bad.text
        rotated = await api.client.post(f"/webhook-subscriptions/{sub['uid']}/rotate-secret", headers=api.auth())
        assert rotated.json()["secret"] != sub["secret"]
    finally:
        await unsubscribe(api, sub["uid"])


async def test_a_url_that_turns_private_is_refused_at_delivery_time_and_logged(api: Api, receiver):
    sub = await subscribe(api, receiver.url, ["batch.completed"])  # accepted while private networks are allowed
    settings = api.service.settings.webhooks
    settings.allow_private_networks = False  # as if DNS now pointed the host at a private address
    try:
        await run_batch(api, [{"title": "x"}])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            log = (await api.client.get(f"/webhook-subscriptions/{sub['uid']}/deliveries", headers=api.auth())).json()
            if log["deliveries"] and log["deliveries"][0]["status"] == "failed":
                break
            await asyncio.sleep(0.05)
        [entry] = log["deliveries"]
        assert entry["status"] == "failed" and "loopback" in entry["lastError"]
        assert receiver.received == [], "nothing was sent to the refused address"
    finally:
        settings.allow_private_networks = True
        await unsubscribe(api, sub["uid"])


async def test_a_slow_receiver_does_not_slow_rendering_or_change_the_outcome(api: Api, receiver):
    receiver.delay_s = 2.0  # every delivery takes 2 s to answer
    sub = await subscribe(api, receiver.url, ["*"])
    try:
        done = await run_batch(api, [{"title": f"r{i}"} for i in range(16)], concurrency=10)
        answered_when_done = receiver.answered
        assert done["status"] == "completed" and done["completedCount"] == 16
        # Had rendering waited for its deliveries, the 16 render.completed events would all have been
        # answered (2 s each) before the batch could finish.
        assert answered_when_done < 16
        await receiver.wait_for(17, timeout_s=30)  # and every event still arrives
    finally:
        await unsubscribe(api, sub["uid"])


async def test_redirects_are_not_followed(api: Api, receiver):
    target = Receiver().start()  # where the redirect points: must never be called
    try:

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(307)
                self.send_header("Location", target.url)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        redirector.daemon_threads = True
        threading.Thread(target=redirector.serve_forever, daemon=True).start()
        sub = await subscribe(api, f"http://127.0.0.1:{redirector.server_address[1]}/hook", ["batch.completed"])
        await run_batch(api, [{"title": "r"}])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            log = (await api.client.get(f"/webhook-subscriptions/{sub['uid']}/deliveries", headers=api.auth())).json()
            if log["deliveries"] and log["deliveries"][0]["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        [entry] = log["deliveries"]
        assert entry["status"] == "failed" and entry["lastStatusCode"] == 307
        assert "redirects are not followed" in entry["lastError"]
        await asyncio.sleep(0.3)
        assert target.received == []
        await unsubscribe(api, sub["uid"])
        redirector.shutdown()
    finally:
        target.stop()


async def test_connection_errors_are_retried_then_given_up_and_logged(api: Api):
    import socket

    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    sub = await subscribe(api, dead, ["batch.completed"])
    try:
        await run_batch(api, [{"title": "d"}])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = (await api.client.get(f"/webhook-subscriptions/{sub['uid']}/deliveries", headers=api.auth())).json()
            if log["deliveries"] and log["deliveries"][0]["status"] == "failed":
                break
            await asyncio.sleep(0.1)
        [entry] = log["deliveries"]
        max_attempts = api.service.settings.webhooks.max_attempts
        assert entry["status"] == "failed" and entry["attemptCount"] == max_attempts
        assert len(entry["attempts"]) == max_attempts and all(a["statusCode"] is None for a in entry["attempts"])
        assert "ConnectError" in entry["attempts"][0]["error"] and "gave up" in entry["lastError"]
        retries = [a["nextRetryAt"] for a in entry["attempts"]]
        assert all(retries[:-1]) and retries[-1] is None
    finally:
        await unsubscribe(api, sub["uid"])


async def test_deliveries_connect_to_the_checked_address_not_a_fresh_lookup(receiver):
    """DNS rebinding: the sender connects to the address the policy checked, keeping the host name in
    Host (and SNI for https). 'hooks.example.test' does not resolve at all: only the pinned address
    can reach the receiver."""
    import httpx

    from pressrun.webhooks.policy import pinned

    port = receiver.server.server_address[1]
    target, headers, extensions = pinned(f"http://hooks.example.test:{port}/hook?x=1", ["127.0.0.1"])
    assert target == f"http://127.0.0.1:{port}/hook?x=1" and extensions == {}
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(target, content=b"{}", headers=headers, extensions=extensions)
    assert response.status_code == 200
    assert receiver.received[0].headers["Host"] == f"hooks.example.test:{port}"
    assert pinned("https://hooks.example.com/h", ["93.184.216.34"])[2] == {"sni_hostname": "hooks.example.com"}
