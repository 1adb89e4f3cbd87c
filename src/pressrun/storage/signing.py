"""Signed, expiring download links for stored files, and the secret they are signed with.

A link is ``/files/<key>?expires=<unix seconds>&signature=<hex>``, where the signature is
HMAC-SHA256 over ``f"{key}\\n{expires}"``. The key may contain anything, but ``expires`` is only digits,
so the last newline separates the two unambiguously. :class:`UrlSigner` is pure (no I/O, the clock can
be passed in); :func:`load_or_create_secret` is the only part that touches the filesystem.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from pressrun.errors import ConfigError, InvalidSignatureError, LinkExpiredError

SECRET_BYTES = 32
_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or not secret:
            raise ValueError("the URL signing secret must be non-empty bytes")
        self._secret = bytes(secret)

    def sign(self, key: str, expires_at: int) -> str:
        """The query string ``expires=<unix>&signature=<hex>`` for the path ``/files/<key>``."""
        return f"expires={expires_at:d}&signature={self._digest(key, expires_at)}"

    def verify(self, key: str, expires: str | int, signature: str, *, now: float | None = None) -> None:
        """Accept a link or raise: InvalidSignatureError if it was not made by :meth:`sign` for this key
        and expiry, LinkExpiredError if it was but its time is up."""
        expires_at = _parse_expires(expires)
        # Checked as text first: compare_digest refuses non-ASCII strings instead of returning False.
        if not isinstance(signature, str) or not _HEX_SIGNATURE.fullmatch(signature):
            raise InvalidSignatureError("the link's 'signature' parameter must be 64 hexadecimal characters")
        if not hmac.compare_digest(signature.lower(), self._digest(key, expires_at)):
            raise InvalidSignatureError("the link's signature does not match its file and expiry")
        # Checked after the signature, so only genuine links are ever reported as expired.
        if (time.time() if now is None else now) > expires_at:
            raise LinkExpiredError("this link has expired; ask for a new one", expires=expires_at)

    def _digest(self, key: str, expires_at: int) -> str:
        message = f"{key}\n{expires_at:d}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def _parse_expires(expires: object) -> int:
    if isinstance(expires, int) and not isinstance(expires, bool) and expires >= 0:
        return expires
    if isinstance(expires, str) and _DIGITS.fullmatch(expires):
        return int(expires)
    raise InvalidSignatureError("the link's 'expires' parameter must be a whole number of seconds")


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret stored as hex text in ``path``, created (mode 0600) on first use.

    Creation is atomic and never replaces an existing file: the secret is written to a temporary file and
    hard-linked into place, so when several processes start at once they all end up with the same secret.
    """
    path = Path(path)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # in case the umask took bits away from 0600, or the OS ignored the mode
            os.write(fd, (secrets.token_hex(SECRET_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won the race; use its secret
    finally:
        temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise ConfigError(
            f"the URL signing secret in {path} is not valid: expected at least {SECRET_BYTES * 2} hexadecimal "
            "characters; delete the file to have a new secret generated (links already handed out stop working)",
            file=str(path),
        )
    return secret
