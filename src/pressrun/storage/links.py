"""Absolute links the service hands out: signed file URLs that expire with their output, and a
batch's results URL. Pure: no I/O, no clock unless a time is left out.

Webhook payloads are built with these inside a database transaction, so they take what they need
(the signer, the public base URL, the retention) once, instead of reaching back into the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pressrun.storage.signing import UrlSigner


@dataclass(frozen=True)
class Links:
    """``base_url`` is where clients reach the server (no trailing slash); ``retention_s`` how long an
    output is kept after it was made."""

    signer: UrlSigner
    base_url: str
    retention_s: float

    def expires_at(self, made_at: datetime | None) -> datetime:
        """When an output made at ``made_at`` (default: now) is deleted, and its links stop working.
        A naive ``made_at`` (SQLite hands those back) is taken as UTC."""
        if made_at is None:
            made_at = datetime.now(UTC)
        elif made_at.tzinfo is None:
            made_at = made_at.replace(tzinfo=UTC)
        return made_at + timedelta(seconds=self.retention_s)

    def file_url(self, key: str, made_at: datetime | None, base_url: str | None = None) -> str:
        """A signed link to a stored output, on ``base_url`` (default: the public one); it expires with
        the output."""
        expires = int(self.expires_at(made_at).timestamp())
        return f"{base_url or self.base_url}/files/{key}?{self.signer.sign(key, expires)}"

    def results_url(self, batch_uid: str) -> str:
        return f"{self.base_url}/templates/batch/{batch_uid}/results"
