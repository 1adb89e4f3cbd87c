"""Helpers every repo module shares: the clock, new public ids, key hashing, UTC-aware times, and how
an error is stored on an item."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from pressrun.errors import PressrunError, error_body


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


def error_columns(error: PressrunError) -> dict[str, Any]:
    """A failed item's error columns: code, message and the details (column, value, variable, line…),
    from the same error_body that errors.jsonl and problem+json answers are made of. ``file`` is left
    out: on the server it names a temporary upload, not anything the client knows."""
    body = error_body(error)
    details = {k: v for k, v in body.items() if k not in ("code", "message", "file")}
    return {"error_code": body["code"], "error_message": body["message"],
            "error_details": json.loads(json.dumps(details, default=str)) if details else None}


NO_ERROR = {"error_code": None, "error_message": None, "error_details": None}
