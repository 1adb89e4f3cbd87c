"""Shared fixtures, and the discipline of the ``chromium`` marker.

A test that needs a real Chromium is marked ``chromium`` (``pytestmark`` or a decorator); a test that
uses a Chromium-backed fixture (``CHROMIUM_FIXTURES``) is marked automatically. ``make test-quick``
runs ``-m "not chromium"``; ``make test`` runs everything. Without Chromium the marked tests skip,
except in CI (CI=true), where a missing browser fails.

A test left unmarked cannot start Chromium by accident: it fails at once, saying to mark it
(an in-process launch is refused; a subprocess gets a PRESSRUN_CHROMIUM_PATH that names the fix).
"""

from __future__ import annotations

import http.server
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from pressrun.rendering import pool
from pressrun.rendering.chromium import find_chromium


def chromium_available() -> bool:
    try:
        return find_chromium(os.environ.get("PRESSRUN_CHROMIUM_PATH")) is not None
    except Exception:
        return False


# Fixtures that start Chromium (the in-process service, `pressrun serve` subprocesses).
CHROMIUM_FIXTURES = frozenset({"api", "server_factory"})
UNMARKED_CHROMIUM_PATH = "/nonexistent/a-test-that-starts-chromium-needs-pytest.mark.chromium"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CHROMIUM_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chromium)
    if chromium_available():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI=true but no Chromium found: run `make setup` (scripts/setup.sh)")
    skip = pytest.mark.skip(reason="no Chromium on this machine (run make setup)")
    for item in items:
        if "chromium" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def chromium_only_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("chromium") is not None:
        return

    async def refuse(*_args: object) -> None:
        pytest.fail(f"{request.node.nodeid} starts Chromium but is not marked chromium: add "
                    "@pytest.mark.chromium (or pytestmark), or render with pressrun.rendering.fake.FakeRenderer",
                    pytrace=False)

    monkeypatch.setattr(pool, "launch_chromium", refuse)
    monkeypatch.setenv("PRESSRUN_CHROMIUM_PATH", UNMARKED_CHROMIUM_PATH)  # for `pressrun` subprocesses


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@contextmanager
def loopback_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1, in a thread, while the block runs; gives its "host:port"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
