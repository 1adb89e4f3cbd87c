"""Batch lifecycle: accepting items, claiming, recording outcomes, closing, cancelling, retrying."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from pressrun.db import repo
from pressrun.db.schema import batches, items


def all_items(db, batch_id):
    return repo.list_items(db, batch_id, 0, 1_000_000, None)


def batch_count(db) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(batches)).scalar_one()


def item_count(db) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(items)).scalar_one()


# --- create_batch -------------------------------------------------------------------------------


def test_create_batch_writes_items_in_index_order(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 2500)  # more than one insert chunk
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "pending" and batch.total_items == 2500
    assert batch.started_at is None and batch.completed_at is None and batch.cancel_requested is False
    rows = all_items(db, batch_id)
    assert [r.idx for r in rows] == list(range(2500))
    assert [json.loads(r.variables) for r in rows] == [{"i": i} for i in range(2500)]
    assert {r.status for r in rows} == {"queued"} and {r.attempts for r in rows} == {0}
    assert repo.item_counts(db, batch_id) == {"queued": 2500}
    assert [r.idx for r in repo.iter_items(db, batch_id, page=700)] == list(range(2500))


def test_create_batch_keeps_unicode_variables(db, make):
    ws = make.workspace()
    tpl = make.template(ws)
    uid, _ = repo.create_batch(db, make.batch_options(ws, tpl), iter([({"name": "Zoë 名前"}, None)]), 10)
    (row,) = all_items(db, make.batch_id(uid))
    assert json.loads(row.variables) == {"name": "Zoë 名前"}


def test_create_batch_at_exactly_max_items_is_accepted(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 5, max_items=5)
    assert repo.item_counts(db, batch_id) == {"queued": 5}


@pytest.mark.parametrize("n", [6, 2501])
def test_too_large_batch_writes_nothing(db, make, n):
    ws = make.workspace()
    tpl = make.template(ws)
    rows = (({"i": i}, None) for i in range(n))
    with pytest.raises(repo.BatchTooLarge) as info:
        repo.create_batch(db, make.batch_options(ws, tpl), rows, max_items=5 if n == 6 else 2500)
    assert info.value.limit == (5 if n == 6 else 2500)
    assert batch_count(db) == 0 and item_count(db) == 0
    assert repo.list_batches(db, ws.id, 0, 10) == (0, [])
    assert repo.count_open_batches(db, ws.id) == 0


def test_empty_batch_is_refused_and_writes_nothing(db, make):
    ws = make.workspace()
    tpl = make.template(ws)
    with pytest.raises(repo.EmptyBatch):
        repo.create_batch(db, make.batch_options(ws, tpl), iter([]), 10)
    assert batch_count(db) == 0 and item_count(db) == 0


def test_an_error_while_reading_rows_writes_nothing(db, make):
    ws = make.workspace()
    tpl = make.template(ws)

    def rows():
        yield {"i": 0}, None
        raise RuntimeError("the upload is truncated")

    with pytest.raises(RuntimeError):
        repo.create_batch(db, make.batch_options(ws, tpl), rows(), 10)
    assert batch_count(db) == 0 and item_count(db) == 0


def test_rows_with_an_error_are_failed_items_at_once(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 4, errors={1, 3})
    rows = all_items(db, batch_id)
    assert [r.status for r in rows] == ["queued", "failed", "queued", "failed"]
    assert rows[1].error_code == "invalid_value" and rows[1].error_message == "bad value in row 1"
    assert rows[1].finished_at is not None and rows[0].finished_at is None
    assert rows[0].error_code is None
    assert repo.get_batch(db, ws.id, uid).status == "pending"
    assert [r.idx for r in repo.claim_items(db, batch_id, 10)] == [0, 2]


def test_a_batch_of_only_bad_rows_is_failed_at_once(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3, errors={0, 1, 2})
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "failed"
    assert batch.completed_at is not None and batch.started_at is not None
    assert repo.claim_items(db, batch_id, 10) == []
    assert repo.count_open_batches(db, ws.id) == 0
    assert batch_id not in [b.id for b in repo.active_batches(db)]


def test_a_batch_of_only_bad_rows_records_its_event_at_creation(db, make, recorder):
    ws = make.workspace()
    tpl = make.template(ws)
    rows = iter([({"i": 0}, make.row_error()), ({"i": 1}, make.row_error())])
    uid, _ = repo.create_batch(db, make.batch_options(ws, tpl), rows, 10, recorder)
    assert recorder.batches == [(make.batch_id(uid), "failed")]


# --- claim_items / finish_item ------------------------------------------------------------------


def test_claim_items_respects_limit_and_order(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 7)
    assert [b.id for b in repo.active_batches(db)] == [batch_id]

    first = repo.claim_items(db, batch_id, 3)
    assert [r.idx for r in first] == [0, 1, 2]
    assert [r.attempts for r in first] == [1, 1, 1]
    assert json.loads(first[0].variables) == {"i": 0}
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "processing" and batch.started_at is not None
    started = batch.started_at

    second = repo.claim_items(db, batch_id, 3)
    assert [r.idx for r in second] == [3, 4, 5]
    assert repo.get_batch(db, ws.id, uid).started_at == started  # not reset by a later claim
    assert [r.idx for r in repo.claim_items(db, batch_id, 3)] == [6]
    assert repo.claim_items(db, batch_id, 3) == []
    assert repo.item_counts(db, batch_id) == {"rendering": 7}
    rows = all_items(db, batch_id)
    assert all(r.started_at is not None for r in rows)


def test_claim_items_only_touches_its_batch(db, make):
    ws = make.workspace()
    _, one = make.batch(ws, 2)
    uid_two, two = make.batch(ws, 2)
    repo.claim_items(db, one, 10)
    assert repo.item_counts(db, two) == {"queued": 2}
    assert repo.get_batch(db, ws.id, uid_two).status == "pending"


def test_finish_item_records_once(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 2)
    a, b = repo.claim_items(db, batch_id, 2)

    assert repo.finish_item(db, batch_id, a.id, make.completed(0)) is None  # b still open
    row = all_items(db, batch_id)[0]
    assert row.status == "completed" and row.output_key == "batches/x/0.png" and row.bytes == 1234
    assert row.finished_at is not None
    first_finish = row.finished_at

    # a second outcome for the same item (a retry, a restart) is ignored
    assert repo.finish_item(db, batch_id, a.id, make.failed()) is None
    row = all_items(db, batch_id)[0]
    assert row.status == "completed" and row.error_code is None and row.finished_at == first_finish

    assert repo.finish_item(db, batch_id, b.id, make.completed(1)) == "completed"
    assert repo.finish_item(db, batch_id, b.id, make.completed(1)) is None  # closes once
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "completed" and batch.completed_at is not None
    assert repo.count_open_batches(db, ws.id) == 0
    assert repo.active_batches(db) == []


def test_finish_item_ignores_an_item_that_is_not_rendering(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 2)
    queued = all_items(db, batch_id)[0]
    assert repo.finish_item(db, batch_id, queued.id, make.completed(0)) is None
    assert repo.item_counts(db, batch_id) == {"queued": 2}


@pytest.mark.parametrize(
    ("outcomes", "final"),
    [
        (["completed", "completed", "completed"], "completed"),
        (["completed", "failed", "completed"], "partial"),
        (["failed", "failed", "failed"], "failed"),
    ],
)
def test_last_item_closes_the_batch_with_its_final_status(db, make, outcomes, final):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3)
    claimed = repo.claim_items(db, batch_id, 3)
    results = [
        repo.finish_item(db, batch_id, item.id, make.completed(item.idx) if o == "completed" else make.failed())
        for item, o in zip(claimed, outcomes, strict=True)
    ]
    assert results == [None, None, final]
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == final and batch.completed_at is not None
    assert repo.aware(batch.completed_at) >= repo.aware(batch.started_at)


def test_row_errors_count_towards_the_final_status(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3, errors={1})
    claimed = repo.claim_items(db, batch_id, 10)
    assert repo.finish_item(db, batch_id, claimed[0].id, make.completed(0)) is None
    assert repo.finish_item(db, batch_id, claimed[1].id, make.completed(2)) == "partial"


def test_release_item_puts_it_back_in_the_queue(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 1)
    (item,) = repo.claim_items(db, batch_id, 1)
    assert repo.release_item(db, batch_id, item.id) is None
    assert repo.item_counts(db, batch_id) == {"queued": 1}
    (again,) = repo.claim_items(db, batch_id, 1)
    assert again.id == item.id and again.attempts == 2


def test_an_item_released_after_cancel_was_requested_is_cancelled_and_the_batch_closes(db, make, recorder):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 3)
    (item,) = repo.claim_items(db, batch_id, 1)
    assert repo.cancel_batch(db, batch_id, recorder) == "processing"  # one item still rendering
    assert repo.release_item(db, batch_id, item.id, recorder) == "cancelled"
    assert repo.item_counts(db, batch_id) == {"cancelled": 3}
    assert [status for _, status in recorder.batches] == ["cancelled"]


# --- cancel_batch -------------------------------------------------------------------------------


def test_cancel_lets_rendering_items_finish_then_closes_cancelled(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 5)
    a, b = repo.claim_items(db, batch_id, 2)

    assert repo.cancel_batch(db, batch_id) == "processing"
    assert repo.item_counts(db, batch_id) == {"rendering": 2, "cancelled": 3}
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.cancel_requested is True and batch.completed_at is None
    assert repo.active_batches(db) == []  # no more claims
    assert repo.claim_items(db, batch_id, 10) == []
    assert all(r.finished_at is not None for r in all_items(db, batch_id) if r.status == "cancelled")

    assert repo.finish_item(db, batch_id, a.id, make.completed(0)) is None
    assert repo.get_batch(db, ws.id, uid).status == "processing"
    assert repo.finish_item(db, batch_id, b.id, make.failed()) == "cancelled"
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "cancelled" and batch.completed_at is not None
    assert repo.item_counts(db, batch_id) == {"completed": 1, "failed": 1, "cancelled": 3}


def test_cancel_with_nothing_in_flight_is_cancelled_at_once(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3)
    assert repo.cancel_batch(db, batch_id) == "cancelled"
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "cancelled" and batch.completed_at is not None
    assert repo.item_counts(db, batch_id) == {"cancelled": 3}
    assert repo.count_open_batches(db, ws.id) == 0


def test_cancel_after_completion_changes_nothing(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 1)
    (item,) = repo.claim_items(db, batch_id, 1)
    assert repo.finish_item(db, batch_id, item.id, make.completed(0)) == "completed"
    assert repo.cancel_batch(db, batch_id) == "completed"
    assert repo.item_counts(db, batch_id) == {"completed": 1}


# --- retry_failed -------------------------------------------------------------------------------


def test_retry_failed_requeues_only_failed_items_and_reopens(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 4, errors={3})
    claimed = repo.claim_items(db, batch_id, 10)
    repo.finish_item(db, batch_id, claimed[0].id, make.completed(0))
    repo.finish_item(db, batch_id, claimed[1].id, make.failed())
    assert repo.finish_item(db, batch_id, claimed[2].id, make.completed(2)) == "partial"

    assert repo.retry_failed(db, batch_id) == 2  # the render failure and the row error
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "processing" and batch.completed_at is None and batch.cancel_requested is False
    assert batch_id in [b.id for b in repo.active_batches(db)]
    rows = all_items(db, batch_id)
    assert [r.status for r in rows] == ["completed", "queued", "completed", "queued"]
    for row in (rows[1], rows[3]):
        assert row.error_code is None and row.error_message is None
        assert row.finished_at is None and row.started_at is None
    assert rows[0].output_key == "batches/x/0.png"  # completed items untouched

    again = repo.claim_items(db, batch_id, 10)
    assert [(r.idx, r.attempts) for r in again] == [(1, 2), (3, 1)]
    repo.finish_item(db, batch_id, again[0].id, make.completed(1))
    assert repo.finish_item(db, batch_id, again[1].id, make.completed(3)) == "completed"
    assert repo.get_batch(db, ws.id, uid).status == "completed"


def test_retry_with_nothing_failed_changes_nothing(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 1)
    (item,) = repo.claim_items(db, batch_id, 1)
    repo.finish_item(db, batch_id, item.id, make.completed(0))
    assert repo.retry_failed(db, batch_id) == 0
    batch = repo.get_batch(db, ws.id, uid)
    assert batch.status == "completed" and batch.completed_at is not None


def test_retry_after_cancel_reopens_only_failed_items(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3)
    (item,) = repo.claim_items(db, batch_id, 1)
    repo.cancel_batch(db, batch_id)
    assert repo.finish_item(db, batch_id, item.id, make.failed()) == "cancelled"
    assert repo.retry_failed(db, batch_id) == 1
    assert repo.item_counts(db, batch_id) == {"queued": 1, "cancelled": 2}
    (again,) = repo.claim_items(db, batch_id, 10)
    assert repo.finish_item(db, batch_id, again.id, make.completed(0)) == "completed"


# --- requeue_abandoned --------------------------------------------------------------------------


def test_requeue_abandoned_puts_rendering_items_back(db, make):
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 4)
    claimed = repo.claim_items(db, batch_id, 3)
    repo.finish_item(db, batch_id, claimed[0].id, make.completed(0))

    assert repo.requeue_abandoned(db) == 2  # "the process crashed"
    assert repo.item_counts(db, batch_id) == {"completed": 1, "queued": 3}
    rows = all_items(db, batch_id)
    assert all(r.started_at is None for r in rows if r.status == "queued")
    assert repo.requeue_abandoned(db) == 0
    assert batch_id in [b.id for b in repo.active_batches(db)]

    # the old claim's late outcome cannot be recorded: the item is no longer rendering
    assert repo.finish_item(db, batch_id, claimed[1].id, make.failed()) is None
    again = repo.claim_items(db, batch_id, 10)
    assert [(r.idx, r.attempts) for r in again] == [(1, 2), (2, 2), (3, 1)]
    results = [repo.finish_item(db, batch_id, r.id, make.completed(r.idx)) for r in again]
    assert results == [None, None, "completed"]


def test_requeue_abandoned_closes_a_cancelled_batch_left_in_flight(db, make, recorder):
    """Cancel was requested while items rendered, then the process died: the batch must not be stuck
    'processing' for ever (active_batches skips cancel-requested batches, so no one claims the items)."""
    ws = make.workspace()
    uid, batch_id = make.batch(ws, 3)
    repo.claim_items(db, batch_id, 2)
    assert repo.cancel_batch(db, batch_id) == "processing"

    _, other = make.batch(ws, 2)
    repo.claim_items(db, other, 1)
    assert repo.requeue_abandoned(db, recorder) == 1  # only the other batch's item is re-queued
    assert repo.get_batch(db, ws.id, uid).status == "cancelled"
    assert recorder.batches == [(batch_id, "cancelled")]  # its batch.completed event, as finish_item would
    assert repo.item_counts(db, other) == {"queued": 2}
    assert repo.item_counts(db, batch_id) == {"cancelled": 3}
    assert repo.count_open_batches(db, ws.id) == 1  # the other one


def test_requeue_abandoned_leaves_other_states_alone(db, make):
    ws = make.workspace()
    _, batch_id = make.batch(ws, 3, errors={2})
    with db.begin() as conn:  # a completed item, as if a render finished
        conn.execute(update(items).where(items.c.batch_id == batch_id, items.c.idx == 0)
                     .values(status="completed"))
    assert repo.requeue_abandoned(db) == 0
    assert repo.item_counts(db, batch_id) == {"completed": 1, "queued": 1, "failed": 1}
