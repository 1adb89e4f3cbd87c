"""Idempotency-Key records (claim, finish, abandon, TTL) and output retention (expired_outputs / mark_expired)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from pressrun.db import repo
from pressrun.db.schema import files, idempotency_keys, items

KEY = "a" * 64
OTHER_KEY = "b" * 64
TTL = timedelta(hours=24)


def backdate_idempotency(db, idem_key: str, age: timedelta) -> None:
    with db.begin() as conn:
        conn.execute(update(idempotency_keys).where(idempotency_keys.c.idem_key == idem_key)
                     .values(created_at=repo.now() - age))


def idempotency_rows(db) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one()


# --- idempotency --------------------------------------------------------------------------------


def test_begin_claims_then_reports_the_running_request(db):
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None
    running = repo.idempotency_begin(db, KEY, "k1", "req-1", TTL)
    assert running is not None
    assert running.status_code is None and running.body is None
    assert running.request_hash == "req-1"
    # a different body under the same key: the caller compares request_hash (422 in the API)
    assert repo.idempotency_begin(db, KEY, "k1", "req-2", TTL).request_hash == "req-1"
    assert idempotency_rows(db) == 1


def test_finish_stores_the_response_for_replay(db):
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None
    repo.idempotency_finish(db, KEY, "k1", 201, "application/json", b'{"id": "batch_1"}')
    done = repo.idempotency_begin(db, KEY, "k1", "req-1", TTL)
    assert (done.status_code, done.content_type, bytes(done.body)) == (201, "application/json", b'{"id": "batch_1"}')
    # abandoning a finished record does nothing: the stored response still replays
    repo.idempotency_abandon(db, KEY, "k1")
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL).status_code == 201


def test_finish_with_an_empty_body(db):
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None
    repo.idempotency_finish(db, KEY, "k1", 204, None, b"")
    done = repo.idempotency_begin(db, KEY, "k1", "req-1", TTL)
    assert done.status_code == 204 and done.content_type is None and bytes(done.body) == b""


def test_abandon_releases_a_running_claim(db):
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None
    repo.idempotency_abandon(db, KEY, "k1")
    assert idempotency_rows(db) == 0
    assert repo.idempotency_begin(db, KEY, "k1", "req-2", TTL) is None  # the retry goes ahead
    assert repo.idempotency_begin(db, KEY, "k1", "req-2", TTL).request_hash == "req-2"


def test_keys_are_scoped_to_the_api_key(db):
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None
    assert repo.idempotency_begin(db, OTHER_KEY, "k1", "req-9", TTL) is None
    repo.idempotency_finish(db, OTHER_KEY, "k1", 200, "application/json", b"{}")
    repo.idempotency_abandon(db, KEY, "k1")
    assert repo.idempotency_begin(db, OTHER_KEY, "k1", "req-9", TTL).status_code == 200
    assert repo.idempotency_begin(db, KEY, "k1", "req-1", TTL) is None


def test_records_expire_after_the_ttl(db):
    assert repo.idempotency_begin(db, KEY, "old", "req-1", TTL) is None
    repo.idempotency_finish(db, KEY, "old", 201, "application/json", b"{}")
    assert repo.idempotency_begin(db, KEY, "young", "req-1", TTL) is None
    # Answered, so kept for the TTL (an unanswered claim this old would be past its lease).
    repo.idempotency_finish(db, KEY, "young", 200, "application/json", b"{}")
    backdate_idempotency(db, "old", TTL + timedelta(minutes=1))
    backdate_idempotency(db, "young", TTL - timedelta(minutes=1))

    assert repo.idempotency_begin(db, KEY, "young", "req-2", TTL).request_hash == "req-1"  # still within
    assert repo.idempotency_begin(db, KEY, "old", "req-2", TTL) is None  # expired: a fresh claim
    fresh = repo.idempotency_begin(db, KEY, "old", "req-2", TTL)
    assert fresh.request_hash == "req-2" and fresh.status_code is None
    assert idempotency_rows(db) == 2


def test_any_begin_sweeps_expired_records(db):
    for name in ("a", "b", "c"):
        assert repo.idempotency_begin(db, KEY, name, "req", TTL) is None
        backdate_idempotency(db, name, TTL * 2)
    assert repo.idempotency_begin(db, KEY, "new", "req", TTL) is None
    assert idempotency_rows(db) == 1


# --- retention ----------------------------------------------------------------------------------


def finished_batch(db, make, ws, n, fail=frozenset()):
    _, batch_id = make.batch(ws, n)
    for item in repo.claim_items(db, batch_id, n):
        repo.finish_item(db, batch_id, item.id, make.failed() if item.idx in fail else make.completed(item.idx))
    return batch_id


def backdate_items(db, batch_id, age: timedelta, idxs=None) -> None:
    query = update(items).where(items.c.batch_id == batch_id)
    if idxs is not None:
        query = query.where(items.c.idx.in_(idxs))
    with db.begin() as conn:
        conn.execute(query.values(finished_at=repo.now() - age))


def test_expired_outputs_respects_retention(db, make):
    ws = make.workspace()
    retention = timedelta(days=7)
    batch_id = finished_batch(db, make, ws, 4, fail={3})
    backdate_items(db, batch_id, retention + timedelta(hours=1), idxs=[0, 1, 3])
    backdate_items(db, batch_id, retention - timedelta(hours=1), idxs=[2])
    _, queued_batch = make.batch(ws, 1)  # never finished: never expires

    expired_items, expired_files = repo.expired_outputs(db, retention)
    assert expired_files == []
    rows = {r.id: r.output_key for r in expired_items}
    by_idx = {r.idx: r for r in repo.list_items(db, batch_id, 0, 10, None)}
    assert rows == {by_idx[0].id: "batches/x/0.png", by_idx[1].id: "batches/x/1.png"}  # not the failed one

    repo.mark_expired(db, list(rows), [])
    after = {r.idx: r for r in repo.list_items(db, batch_id, 0, 10, None)}
    assert after[0].expired_at is not None and after[1].expired_at is not None
    assert after[2].expired_at is None and after[3].expired_at is None
    assert after[0].status == "completed"  # the record stays; only the output goes
    assert repo.expired_outputs(db, retention) == ([], [])
    assert repo.expired_outputs(db, timedelta(0))[0][0].id == by_idx[2].id
    assert queued_batch not in {r.id for r in repo.expired_outputs(db, timedelta(0))[0]}


def test_expired_files_are_deleted_by_mark_expired(db, make):
    ws = make.workspace()
    repo.record_file(db, ws.id, "renders/old.png", 10, repo.now() - timedelta(seconds=1))
    repo.record_file(db, ws.id, "renders/new.png", 20, repo.now() + timedelta(hours=1))
    expired_items, expired_files = repo.expired_outputs(db, timedelta(days=7))
    assert expired_items == []
    assert [r.key for r in expired_files] == ["renders/old.png"]
    repo.mark_expired(db, [], [r.id for r in expired_files])
    with db.connect() as conn:
        assert conn.execute(select(files.c.key)).scalars().all() == ["renders/new.png"]
    assert repo.expired_outputs(db, timedelta(days=7)) == ([], [])


def test_expired_outputs_pages_with_limit(db, make):
    """The sweeper calls expired_outputs and mark_expired until nothing is left."""
    ws = make.workspace()
    batch_id = finished_batch(db, make, ws, 12)
    backdate_items(db, batch_id, timedelta(days=2))
    for n in range(5):
        repo.record_file(db, ws.id, f"renders/{n}.png", 1, repo.now() - timedelta(minutes=1))
    seen_items, seen_files, rounds = set(), set(), 0
    while True:
        item_rows, file_rows = repo.expired_outputs(db, timedelta(days=1), limit=5)
        if not item_rows and not file_rows:
            break
        assert len(item_rows) <= 5 and len(file_rows) <= 5
        assert not seen_items & {r.id for r in item_rows}
        seen_items |= {r.id for r in item_rows}
        seen_files |= {r.id for r in file_rows}
        repo.mark_expired(db, [r.id for r in item_rows], [r.id for r in file_rows])
        rounds += 1
        assert rounds < 10
    assert len(seen_items) == 12 and len(seen_files) == 5 and rounds == 3


def test_claims_a_crash_left_are_released_at_start_up_and_answers_are_kept(db):
    assert repo.idempotency_begin(db, KEY, "cut-off", "req-1", TTL) is None  # the process dies here
    assert repo.idempotency_begin(db, KEY, "answered", "req-2", TTL) is None
    repo.idempotency_finish(db, KEY, "answered", 201, "application/json", b"{}")

    assert repo.idempotency_release_claims(db) == 1
    assert repo.idempotency_begin(db, KEY, "cut-off", "req-1", TTL) is None  # the retry runs
    assert repo.idempotency_begin(db, KEY, "answered", "req-2", TTL).status_code == 201  # still replayed


def test_a_claim_older_than_its_lease_is_abandoned(db):
    from pressrun.db.repo.idempotency import CLAIM_LEASE
    from pressrun.db.schema import idempotency_keys

    assert repo.idempotency_begin(db, KEY, "stale", "req-1", TTL) is None
    with db.begin() as conn:
        conn.execute(idempotency_keys.update().values(created_at=repo.now() - CLAIM_LEASE - timedelta(seconds=1)))
    assert repo.idempotency_begin(db, KEY, "stale", "req-2", TTL) is None  # taken over, not 409 for a day
    assert repo.idempotency_begin(db, KEY, "stale", "req-2", TTL).request_hash == "req-2"
