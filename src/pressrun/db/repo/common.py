"""Helpers every repo module shares: the clock, new public ids, key hashing, UTC-aware times."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def new_uid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def hash_key(key: str) -> str:
    """API keys carry 256 random bits, so a fast hash is safe to store (as for GitHub tokens)."""
    return hashlib.sha256(key.encode()).hexdigest()


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything pressrun stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset (None stays None)."""
    value = aware(value)
    return value.isoformat() if value is not None else None
