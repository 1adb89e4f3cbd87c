"""The network policy's decisions, table-driven (pure; no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pressrun.rendering.policy import TEMPLATE_ORIGIN, NetworkPolicy, PassThrough, Refuse, ServeAsset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "tpl" / "assets").mkdir(parents=True)
    (tmp_path / "tpl" / "assets" / "logo.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    return tmp_path / "tpl"


@pytest.mark.parametrize(
    ("allowed", "url", "expected"),
    [
        ((), f"{TEMPLATE_ORIGIN}/assets/logo.png", "serve"),
        ((), f"{TEMPLATE_ORIGIN}/assets/nope.png", "missing"),
        ((), f"{TEMPLATE_ORIGIN}/../secret.txt", "refuse"),
        ((), f"{TEMPLATE_ORIGIN}/assets/..%2F..%2Fsecret.txt", "refuse"),
        ((), "data:image/png;base64,AAAA", "pass"),
        ((), "https://cdn.example.com/a.png", "refuse"),
        ((), "file:///etc/passwd", "refuse"),
        ((), "ftp://example.com/x", "refuse"),
        (("cdn.example.com",), "https://cdn.example.com/a.png", "pass"),
        (("*.example.com",), "https://img.example.com/a.png", "pass"),
        (("*.example.com",), "https://example.org/a.png", "refuse"),
        (("127.0.0.1:8080",), "http://127.0.0.1:8080/a.png", "pass"),
        (("127.0.0.1:8080",), "http://127.0.0.1:9090/a.png", "refuse"),
        (("cdn.example.com",), "file:///etc/passwd", "refuse"),
    ],
)
def test_decisions(root, allowed, url, expected):
    decision = NetworkPolicy(allowed).decide(url, root)
    kind = {
        PassThrough: "pass",
        Refuse: "refuse",
    }.get(type(decision))
    if isinstance(decision, ServeAsset):
        kind = "serve" if decision.path is not None else "missing"
    assert kind == expected, decision
