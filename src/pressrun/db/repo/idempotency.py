"""Idempotency-Key records: claim a key for a request, store its response for replay, or give the
key up when the request failed before it had one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from pressrun.db.repo.common import now
from pressrun.db.schema import idempotency_keys

# A claim whose request has not answered after this long is abandoned (its process died): the key
# may be claimed again. No request runs this long; a restart releases claims at once (release_claims).
CLAIM_LEASE = timedelta(minutes=15)


def idempotency_begin(engine: Engine, key_hash: str, idem_key: str, request_hash: str,
                      ttl: timedelta) -> Row | None:
    """Claim ``idem_key`` for this request. Returns None when claimed (go ahead), else the earlier
    record (its status_code is None while the first request is still running)."""
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                stamp = now()
                conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < stamp - ttl))
                conn.execute(delete(idempotency_keys).where(idempotency_keys.c.status_code.is_(None),
                                                            idempotency_keys.c.created_at < stamp - CLAIM_LEASE))
                existing = conn.execute(
                    select(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash,
                                                   idempotency_keys.c.idem_key == idem_key)
                ).first()
                if existing is not None:
                    return existing
                conn.execute(insert(idempotency_keys).values(key_hash=key_hash, idem_key=idem_key,
                                                             request_hash=request_hash, created_at=now()))
                return None
        except IntegrityError:
            # PostgreSQL: a concurrent request with the same key inserted between our SELECT and INSERT
            # (the unique constraint made us wait for it to commit). Look again: its record is there now.
            if attempt:
                raise
    raise AssertionError("unreachable")


def idempotency_finish(engine: Engine, key_hash: str, idem_key: str, status_code: int, content_type: str | None,
                       body: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key_hash == key_hash, idempotency_keys.c.idem_key == idem_key)
            .values(status_code=status_code, content_type=content_type, body=body)
        )


def idempotency_abandon(engine: Engine, key_hash: str, idem_key: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash,
                                                    idempotency_keys.c.idem_key == idem_key,
                                                    idempotency_keys.c.status_code.is_(None)))


def idempotency_release_claims(engine: Engine) -> int:
    """At start-up of the only server: claims of requests a crash cut off are given up, so a client's
    retry with the same key runs instead of hearing 409 idempotency_in_progress until the TTL."""
    with engine.begin() as conn:
        return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.status_code.is_(None))).rowcount
