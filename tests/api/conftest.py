"""API fixtures.

``api``: one in-process service for the whole session (real SQLite in a temp dir, real Chromium,
real dispatcher), driven through httpx's ASGI transport. Two workspaces with a key each, plus a
key on the small 'tiny' plan for limit tests.

``ServerProcess``: a real ``pressrun serve`` subprocess on a free loopback port, for the tests
that kill it, restart it and measure it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from pressrun.api import create_app
from pressrun.db import repo
from pressrun.rendering.fake import FakeRenderer
from pressrun.service import Service
from pressrun.settings import PlanSettings, RenderSettings, Settings
from pressrun.storage import MemoryStorage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = PlanSettings(rate_limit="5/minute", max_batch_items=5, max_concurrent_batches=1)


@dataclass
class Api:
    service: Service
    client: httpx.AsyncClient
    key_a: str  # workspace A
    key_b: str  # workspace B
    key_tiny: str  # workspace C, 'tiny' plan: 5 requests/minute, 5 items, 1 open batch

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key_a}"}


@pytest.fixture(scope="session")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    data_dir = tmp_path_factory.mktemp("api-data")
    settings = Settings(
        data_dir=data_dir,
        render=RenderSettings(concurrency=2, timeout_s=15),
        api={"plans": {"default": PlanSettings(rate_limit="100000/minute"), "tiny": TINY},  # type: ignore[arg-type]
             "allowed_hosts": ["pressrun.test"]},  # the test client's host: links are built on it
        # Webhook receivers in tests live on loopback; retries are fast so tests see several attempts.
        webhooks={"allow_private_networks": True, "retry_min_s": 0.2, "retry_max_s": 1.0, "timeout_s": 3.0,
                  "max_attempts": 4, "disable_after_failures": 2},  # type: ignore[arg-type]
    )
    service = Service(settings)
    await service.start()
    app = create_app(service, manage_service=False)
    key_a, _ = repo.create_key(service.db, name="workspace A", plan="default")
    key_b, _ = repo.create_key(service.db, name="workspace B", plan="default")
    key_tiny, _ = repo.create_key(service.db, name="tiny", plan="tiny")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pressrun.test", timeout=60) as client:
        yield Api(service, client, key_a, key_b, key_tiny)
    await service.stop()


@dataclass
class FakeApi(Api):
    """The service on its seams: FakeRenderer (no Chromium), MemoryStorage, a mock webhook transport.
    Neither the dispatcher nor the webhook sender runs on its own: a test drives them in burst mode
    (``await fake_api.drain()``, ``await fake_api.service.webhooks.deliver_due()``)."""

    renderer: FakeRenderer = None  # type: ignore[assignment]
    storage: MemoryStorage = None  # type: ignore[assignment]
    webhook_requests: list[httpx.Request] = None  # type: ignore[assignment]

    async def drain(self) -> int:
        return await self.service.dispatcher.drain()


@pytest.fixture
async def fake_api(tmp_path: Path) -> AsyncIterator[FakeApi]:
    requests: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    settings = Settings(
        data_dir=tmp_path / "data",
        render=RenderSettings(concurrency=2),
        api={"plans": {"default": PlanSettings(rate_limit="100000/minute"), "tiny": TINY},  # type: ignore[arg-type]
             "allowed_hosts": ["pressrun.test"]},  # the test client's host: links are built on it
        webhooks={"allow_private_networks": True, "retry_min_s": 0.01, "retry_max_s": 0.01},  # type: ignore[arg-type]
    )
    renderer, storage = FakeRenderer(settings.render), MemoryStorage()
    service = Service(settings, storage=storage, renderer=renderer, webhook_transport=httpx.MockTransport(receive))
    service.dispatcher.pause_s = 0.0  # a test drains again at once after an error that stops dispatch
    await service.start(dispatch=False, deliver=False)
    keys = [repo.create_key(service.db, name=name, plan=plan)[0]
            for name, plan in (("workspace A", "default"), ("workspace B", "default"), ("tiny", "tiny"))]
    transport = httpx.ASGITransport(app=create_app(service, manage_service=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://pressrun.test", timeout=30) as client:
            yield FakeApi(service, client, *keys, renderer=renderer, storage=storage, webhook_requests=requests)
    finally:
        await service.stop()


SIMPLE_HTML = (
    "<html><body style='margin:0'><div style='width:100%;height:100%;background:{{ color | default(\"#ff0000\") }}'>"
    "{{ title }}</div></body></html>"
)


async def create_template(api: Api, key: str | None = None, **fields: object) -> dict:
    body = {"name": "t", "html": SIMPLE_HTML, "width": 200, "height": 100, "format": "png", **fields}
    response = await api.client.post("/templates", json=body, headers=api.auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def wait_for_batch(api: Api, batch_id: str, key: str | None = None, timeout_s: float = 60) -> dict:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await api.client.get(f"/templates/batch/{batch_id}/results", headers=api.auth(key))
        body = response.json()
        if body["status"] in ("completed", "partial", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish in {timeout_s} s: {body}")


# --- a real server process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``pressrun serve`` in a subprocess; ``start()`` waits for /ready, ``kill()`` is kill -9."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args or []
        self.port = free_port()
        self.env = {**os.environ, "PRESSRUN_DATA_DIR": str(data_dir), "PRESSRUN_API__PORT": str(self.port),
                    **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.first_key: str | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        executable = Path(sys.executable).parent / "pressrun"
        self.process = subprocess.Popen([str(executable), "serve", *self.args], env=self.env, stdout=log, stderr=log, text=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            self.stop()
            raise AssertionError(f"server not ready in {timeout_s} s:\n{self.log_path.read_text()}")
        if self.first_key is None:
            found = re.search(r"\b(pr_[A-Za-z0-9_-]{20,})", self.log_path.read_text())
            self.first_key = found.group(1) if found else None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def create_key(self, name: str) -> str:
        executable = Path(sys.executable).parent / "pressrun"
        done = subprocess.run([str(executable), "keys", "create", "--name", name], env=self.env,
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()


@pytest.fixture
def server_factory(tmp_path: Path):
    servers: list[ServerProcess] = []

    def make(name: str = "server", env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path / name, env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem: the media type, the five members, and status/title that agree with HTTP."""
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].split(";")[0].strip() == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= body.keys(), body
    assert body["status"] == status
    assert body["title"] == HTTPStatus(status).phrase
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["detail"], str) and body["detail"].strip()
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body
