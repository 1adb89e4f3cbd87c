"""Exactly-once under concurrency: many threads recording outcomes of one batch, racing claims.

On PostgreSQL these rely on the batch row lock (SELECT ... FOR UPDATE) in finish_item/cancel_batch;
on SQLite on BEGIN IMMEDIATE. Both backends run the same tests.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pressrun.db import repo

THREADS = 8
ITEMS = 200


def finish_all(db, make, batch_id, claimed, barrier=None, recorder=None):
    """Finish ``claimed`` items from THREADS threads, each its own share; every 10th one fails.
    All threads start together and, to make the race for the last item as tight as it gets, each
    holds its last item until every thread is down to its last."""
    shares = [claimed[i::THREADS] for i in range(THREADS)]
    last_round = threading.Barrier(THREADS)

    def worker(share):
        if barrier is not None:
            barrier.wait(timeout=10)
        out = []
        for n, item in enumerate(share):
            if n == len(share) - 1:
                last_round.wait(timeout=30)
            outcome = make.failed() if item.idx % 10 == 0 else make.completed(item.idx)
            out.append(repo.finish_item(db, batch_id, item.id, outcome, recorder))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, share) for share in shares]
        return [r for f in futures for r in f.result()]


def test_concurrent_finishes_close_the_batch_exactly_once(db, make, recorder):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, ITEMS)
    claimed = repo.claim_items(db, batch_id, ITEMS)
    assert len(claimed) == ITEMS

    results = finish_all(db, make, batch_id, claimed, threading.Barrier(THREADS), recorder)

    assert len(results) == ITEMS
    closers = [r for r in results if r is not None]
    assert closers == ["partial"]
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "partial" and batch.completed_at is not None
    counts = repo.item_counts(db, batch_id)
    assert counts == {"completed": ITEMS - ITEMS // 10, "failed": ITEMS // 10}
    assert sum(counts.values()) == batch.total_items == ITEMS
    # the batch.completed event is written once, in the closing transaction; one event per item
    assert recorder.batches == [(batch_id, "partial")]
    assert sorted(i for _, i in recorder.items) == sorted(item.id for item in claimed)


def test_concurrent_duplicate_finishes_record_each_item_once(db, make, recorder):
    """Two recorders per item (a retry racing the original): one outcome per item, one close."""
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 80)
    claimed = repo.claim_items(db, batch_id, 80)
    doubled = [item for item in claimed for _ in range(2)]
    barrier = threading.Barrier(THREADS)

    def worker(share):
        barrier.wait(timeout=10)
        return [repo.finish_item(db, batch_id, item.id, make.completed(item.idx), recorder) for item in share]

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, doubled[i::THREADS]) for i in range(THREADS)]
        results = [r for f in futures for r in f.result()]
    assert [r for r in results if r is not None] == ["completed"]
    assert repo.item_counts(db, batch_id) == {"completed": 80}
    assert repo.get_batch(db, ws.id, uid).status == "completed"
    assert recorder.batches == [(batch_id, "completed")]
    assert sorted(i for _, i in recorder.items) == sorted(item.id for item in claimed)


def test_cancel_racing_finishes_closes_cancelled_exactly_once(db, make, recorder):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, ITEMS)
    claimed = repo.claim_items(db, batch_id, 150)  # 50 stay queued, so nothing closes before the cancel
    barrier = threading.Barrier(THREADS + 1)
    with ThreadPoolExecutor(1) as canceller:

        def cancel():
            barrier.wait(timeout=10)
            return repo.cancel_batch(db, batch_id, recorder)

        cancelled = canceller.submit(cancel)
        results = finish_all(db, make, batch_id, claimed, barrier, recorder)
        cancel_result = cancelled.result()

    closers = [r for r in results if r is not None]
    if cancel_result == "cancelled":  # the cancel came after the last finish: it closed the batch
        closers.append("cancelled")
    else:
        assert cancel_result == "processing"
    assert closers == ["cancelled"]
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "cancelled" and batch.completed_at is not None
    counts = repo.item_counts(db, batch_id)
    assert counts["cancelled"] == 50 and counts["completed"] + counts["failed"] == 150
    assert recorder.batches == [(batch_id, "cancelled")]


def test_concurrent_claims_never_hand_out_an_item_twice(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, ITEMS)
    barrier = threading.Barrier(THREADS)

    def worker():
        barrier.wait(timeout=10)
        got = []
        while rows := repo.claim_items(db, batch_id, 7):
            got.extend(r.id for r in rows)
        return got

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker) for _ in range(THREADS)]
        claimed = [i for f in futures for i in f.result()]
    assert len(claimed) == len(set(claimed)) == ITEMS
    assert repo.item_counts(db, batch_id) == {"rendering": ITEMS}
    assert {r.attempts for r in repo.list_items(db, batch_id, 0, ITEMS, None)} == {1}


def test_concurrent_idempotency_begin_claims_once(db):
    """Simultaneous requests with the same Idempotency-Key: one goes ahead, the others see its record
    (and the API answers 409), none fails with a database error."""
    ttl = timedelta(hours=1)
    with ThreadPoolExecutor(THREADS) as pool:
        for round_ in range(15):
            barrier = threading.Barrier(THREADS)

            def begin(key=f"idem-{round_}", barrier=barrier):
                barrier.wait(timeout=10)
                return repo.idempotency_begin(db, "k" * 64, key, "r" * 64, ttl)

            results = [f.result() for f in [pool.submit(begin) for _ in range(THREADS)]]
            assert sum(r is None for r in results) == 1, round_
            assert all(r.idem_key == f"idem-{round_}" for r in results if r is not None)


def test_concurrent_template_updates_each_write_a_version(db, make):
    """Simultaneous PUTs of one template: every update gets its own version number, none fails."""
    ws = make.workspace()
    tpl = make.template(ws)
    barrier = threading.Barrier(THREADS)

    def update(n):
        barrier.wait(timeout=10)
        return repo.update_template(db, ws.id, tpl.uid, None, {"html": f"<p>{n}</p>"}).version

    with ThreadPoolExecutor(THREADS) as pool:
        versions = sorted(pool.map(update, range(THREADS)))
    assert versions == list(range(2, THREADS + 2))
    assert repo.get_template(db, ws.id, tpl.uid).version == THREADS + 1
    htmls = {repo.template_version_by_id(db, tpl.id, v).html for v in versions}
    assert htmls == {f"<p>{n}</p>" for n in range(THREADS)}
