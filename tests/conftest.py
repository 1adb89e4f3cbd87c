"""Shared fixtures. Chromium tests use the real browser; in CI (CI=true) a missing browser fails."""

from __future__ import annotations

import http.server
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from pressrun.rendering.chromium import find_chromium


def chromium_available() -> bool:
    try:
        return find_chromium(os.environ.get("PRESSRUN_CHROMIUM_PATH")) is not None
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_available():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI=true but no Chromium found: run `make setup` (scripts/setup.sh)")
    skip = pytest.mark.skip(reason="no Chromium on this machine (run make setup)")
    for item in items:
        if "chromium" in item.keywords:
            item.add_marker(skip)


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
