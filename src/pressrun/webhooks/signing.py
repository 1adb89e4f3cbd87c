"""Webhook signatures: ``X-Pressrun-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

The timestamp is inside the signed text, so a captured delivery cannot be replayed later than the
receiver's tolerance. Several ``v1=`` values may appear (e.g. while a secret is being rotated);
any one that matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["InvalidSignature", "sign", "verify"]


class InvalidSignature(Exception):
    """The delivery is not from pressrun (or not with this secret), or it is too old."""


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str | bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Pressrun-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify(
    body: bytes | str, header: str | None, secret: str | bytes, tolerance_s: float = 300, *, now: float | None = None
) -> None:
    """Check a delivery. ``body`` is the raw request body, exactly as received (not re-serialised
    JSON). Raises :class:`InvalidSignature` saying what is wrong; returns None when it is genuine."""
    if not header:
        raise InvalidSignature("no X-Pressrun-Signature header")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"timestamp {value!r} is not a number") from None
        elif name == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise InvalidSignature("the header must look like t=<unix seconds>,v1=<hex signature>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature(f"timestamp is {abs(current - timestamp):.0f} s away from now (tolerance {tolerance_s:g} s)")
    expected = _digest(secret, timestamp, raw)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("signature does not match (wrong secret, or the body was changed)")
