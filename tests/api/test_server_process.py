"""The real server process: kill -9 mid-batch and restart, two workspaces at once, a 50,000-row
batch accepted with bounded memory, bad input that never takes it down."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.chromium

FAST_HTML = "<html><body style='margin:0;background:#36c'>{{ n }}</body></html>"
SERVER_ENV = {"PRESSRUN_RENDER__CONCURRENCY": "2"}


def make_template(client: httpx.Client, key: str, html: str = FAST_HTML) -> str:
    response = client.post("/templates", json={"name": "t", "html": html, "width": 160, "height": 90,
                                               "format": "jpeg"}, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()["uid"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def results(client: httpx.Client, key: str, batch_id: str, **params: object) -> dict:
    response = client.get(f"/templates/batch/{batch_id}/results", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def wait_done(client: httpx.Client, key: str, batch_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = results(client, key, batch_id, limit=1)
        if body["status"] in ("completed", "partial", "failed", "cancelled"):
            return body
        time.sleep(0.25)
    raise AssertionError(f"batch {batch_id} not finished after {timeout_s} s: {body}")


def all_results(client: httpx.Client, key: str, batch_id: str) -> list[dict]:
    out: list[dict] = []
    while True:
        page = results(client, key, batch_id, offset=len(out), limit=1000)["results"]
        if not page:
            return out
        out.extend(page)


def test_kill_9_mid_batch_then_restart_completes_every_item_exactly_once(server_factory):
    server = server_factory(env=SERVER_ENV)
    server.start()
    key = server.first_key
    assert key, "the first start prints an API key"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        uid = make_template(client, key)
        response = client.post(f"/templates/{uid}/batch-render",
                               json={"variableSets": [{"n": i} for i in range(300)], "concurrency": 4},
                               headers=auth(key))
        assert response.status_code == 202, response.text
        batch_id = response.json()["batchId"]
        deadline = time.monotonic() + 120
        while results(client, key, batch_id, limit=1)["completedCount"] < 40:
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.05)
        server.kill()
        after_kill = None

    server.start()  # same data directory and port; the batch resumes by itself
    with httpx.Client(base_url=server.url, timeout=30) as client:
        after_kill = results(client, key, batch_id, limit=1)
        assert after_kill["completedCount"] < 300, "the kill came before the end"
        done = wait_done(client, key, batch_id, timeout_s=240)
        assert done["status"] == "completed"
        assert (done["completedCount"], done["failedCount"], done["cancelledCount"], done["pendingCount"]) == (
            300, 0, 0, 0)
        every = all_results(client, key, batch_id)
        assert [r["index"] for r in every] == list(range(300))  # each item once, none missing
        assert all(r["status"] == "completed" and r["bytes"] > 0 for r in every)
        sample = client.get(every[150]["url"].replace(server.url, ""))
        assert sample.status_code == 200 and sample.headers["content-type"] == "image/jpeg"
    outputs = list((server.data_dir / "files" / "batches" / batch_id).iterdir())
    assert sorted(p.name for p in outputs) == sorted(f"{i}.jpg" for i in range(300))  # no strays, no doubles


def test_two_workspaces_render_at_once_and_see_only_their_own(server_factory):
    server = server_factory(env=SERVER_ENV)
    server.start()
    keys = [server.first_key, server.create_key("second workspace")]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        batches = []
        for number, key in enumerate(keys):
            uid = make_template(client, key)
            response = client.post(f"/templates/{uid}/batch-render",
                                   json={"variableSets": [{"n": f"{number}-{i}"} for i in range(40)]},
                                   headers=auth(key))
            assert response.status_code == 202, response.text
            batches.append(response.json()["batchId"])
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            finished = list(pool.map(lambda kb: wait_done(client, kb[0], kb[1], 180), zip(keys, batches, strict=True)))
        assert [f["status"] for f in finished] == ["completed", "completed"]
        assert [f["completedCount"] for f in finished] == [40, 40]
        for key, own, other in ((keys[0], batches[0], batches[1]), (keys[1], batches[1], batches[0])):
            listed = [b["batchId"] for b in client.get("/templates/batch", headers=auth(key)).json()["batches"]]
            assert listed == [own]
            assert client.get(f"/templates/batch/{other}/results", headers=auth(key)).status_code == 404


class RssSampler:
    """Peak RSS of one process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_50000_row_batch_is_accepted_without_rendering_and_memory_stays_bounded(server_factory, tmp_path: Path):
    server = server_factory(env=SERVER_ENV)
    server.start()
    key = server.first_key
    rows = [{"n": i, "name": f"Customer number {i}", "city": "Zürich"} for i in range(50_000)]
    with httpx.Client(base_url=server.url, timeout=120) as client:
        uid = make_template(client, key)
        assert server.process is not None
        baseline = psutil.Process(server.process.pid).memory_info().rss
        with RssSampler(server.process.pid) as accepting:
            response = client.post(f"/templates/{uid}/batch-render", json={"variableSets": rows}, headers=auth(key))
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert (accepted["totalItems"], accepted["status"]) == (50_000, "pending")
        batch_id = accepted["batchId"]
        state = results(client, key, batch_id, limit=1)
        assert state["completedCount"] < 1000, "nothing is rendered in the request"
        # Let it render for a while: memory must not climb with the rows processed.
        with RssSampler(server.process.pid) as processing:
            time.sleep(8)
        progressed = results(client, key, batch_id, limit=1)["completedCount"]
        assert progressed > state["completedCount"]
        cancelled = client.post(f"/templates/batch/{batch_id}/cancel", headers=auth(key))
        assert cancelled.status_code == 200
        done = wait_done(client, key, batch_id, 60)
        assert done["status"] == "cancelled"
        assert done["completedCount"] + done["failedCount"] + done["cancelledCount"] == 50_000
    growth_accepting = (accepting.peak - baseline) / 2**20
    growth_processing = (processing.peak - baseline) / 2**20
    print(f"50k batch: server RSS baseline {baseline / 2**20:.0f} MiB, +{growth_accepting:.0f} MiB while accepting, "
          f"+{growth_processing:.0f} MiB while processing")
    # The request body itself is ~3 MB of JSON; parsing it costs a bounded multiple of that.
    assert growth_accepting < 250, f"accepting grew RSS by {growth_accepting:.0f} MiB"
    assert growth_processing < 250, f"processing grew RSS by {growth_processing:.0f} MiB"


def test_bad_input_never_takes_the_server_down(server_factory):
    server = server_factory(env=SERVER_ENV)
    server.start()
    key = server.first_key
    with httpx.Client(base_url=server.url, timeout=30) as client:
        uid = make_template(client, key)
        attempts = [
            ("POST", "/templates", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
            ("POST", "/templates", {"json": {"name": 1, "html": ["x"]}}),
            ("POST", "/templates", {"json": {"name": "x", "html": "{% for %}"}}),
            ("POST", "/templates", {"json": {"name": "x" * 3_000_000, "html": "x"}}),
            ("POST", f"/templates/{uid}/batch-render", {"json": {"variableSets": "nope"}}),
            ("POST", f"/templates/{uid}/batch-render",
             {"content": b"name\n\xff\xfe\xfa\n", "headers": {"Content-Type": "text/csv"}}),
            ("POST", "/templates/tpl_nope/batch-render", {"json": {"variableSets": [{}]}}),
            ("GET", "/templates/batch/batch_nope/results", {}),
        ]
        for method, path, extra in attempts:
            headers = {**auth(key), **extra.pop("headers", {})}
            response = client.request(method, path, headers=headers, **extra)
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
            assert response.headers["content-type"] == "application/problem+json"
            assert len(response.content) < 10_000, "a huge bad value is not echoed back"
            assert client.get("/health").status_code == 200
        assert server.process is not None and server.process.poll() is None
        ok = client.post(f"/templates/{uid}/render", json={"variables": {"n": 1}}, headers=auth(key))
        assert ok.status_code == 200, ok.text


def test_a_webhook_cut_off_by_kill_9_is_delivered_after_restart(server_factory):
    import http.server
    import json

    from pressrun.webhooks import verify

    received: list[tuple[dict[str, str], bytes]] = []
    first_arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((dict(self.headers.items()), body))
            if len(received) == 1:
                first_arrived.set()
                time.sleep(8)  # the server is killed while this delivery is in flight
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    server = server_factory(env={**SERVER_ENV, "PRESSRUN_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
                                 "PRESSRUN_WEBHOOKS__TIMEOUT_S": "20"})
    server.start()
    key = server.first_key
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            sub = client.post("/webhook-subscriptions", json={"url": hook}, headers=auth(key)).json()
            uid = make_template(client, key)
            batch_id = client.post(f"/templates/{uid}/batch-render", json={"variableSets": [{"n": 1}, {"n": 2}]},
                                   headers=auth(key)).json()["batchId"]
            assert first_arrived.wait(60), "the first delivery attempt never came"
            server.kill()
        server.start()
        # Well inside the 45 s lease of the cut-off attempt: the restart itself must release it.
        deadline = time.monotonic() + 20
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(received) >= 2, "the delivery was not sent again after the restart"
        (first_headers, first_body), (headers, body) = received[0], received[1]
        assert headers["X-Pressrun-Delivery-Id"] == first_headers["X-Pressrun-Delivery-Id"]
        assert body == first_body
        verify(body, headers["X-Pressrun-Signature"], sub["secret"])
        assert json.loads(body)["data"]["batchId"] == batch_id
    finally:
        receiver.shutdown()
