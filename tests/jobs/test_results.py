"""The batch lifecycle's pure rules and the one builder of what clients see (pure, table-driven,
no database, no browser): the status a closing batch gets, an item's shown status, item results
and batch summaries."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pressrun.jobs.results import batch_summary, has_file, item_result, shown_status
from pressrun.models import SHOWN_EXPIRED, BatchStatus, DeliveryStatus, ItemStatus, closing_status

MADE = datetime(2030, 1, 2, 3, 4, 5)  # naive, as SQLite hands it back
EXPIRED = datetime(2030, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cancel_requested", "completed", "failed", "expected"),
    [
        (False, 3, 0, BatchStatus.COMPLETED),
        (False, 0, 3, BatchStatus.FAILED),
        (False, 2, 1, BatchStatus.PARTIAL),
        (False, 0, 0, BatchStatus.COMPLETED),  # nothing failed (e.g. a batch of zero renderable rows is not one)
        (True, 3, 0, BatchStatus.CANCELLED),  # a requested cancel wins, whatever finished meanwhile
        (True, 0, 3, BatchStatus.CANCELLED),
        (True, 2, 1, BatchStatus.CANCELLED),
        (True, 0, 0, BatchStatus.CANCELLED),
    ],
)
def test_closing_status(cancel_requested: bool, completed: int, failed: int, expected: BatchStatus) -> None:
    assert closing_status(cancel_requested=cancel_requested, completed=completed, failed=failed) is expected


def test_status_sets_are_named_once_and_cover_every_state() -> None:
    assert ItemStatus.open() == ("queued", "rendering")
    assert set(ItemStatus.open()) | set(ItemStatus.finished()) == set(ItemStatus)
    assert not set(ItemStatus.open()) & set(ItemStatus.finished())
    assert BatchStatus.open() == ("pending", "processing")
    assert set(BatchStatus.open()) | set(BatchStatus.finished()) == set(BatchStatus)
    assert not set(BatchStatus.open()) & set(BatchStatus.finished())
    assert SHOWN_EXPIRED not in set(ItemStatus), "expired is shown, never stored"
    for states in (ItemStatus, BatchStatus, DeliveryStatus):
        assert all(s == s.value == s.value.lower() and isinstance(s, str) for s in states)


def item(status: str, *, output_key: str | None = "batches/b/0.png", expired_at: datetime | None = None,
         error_code: str | None = None, error_details: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(idx=4, status=status, output_key=output_key, expired_at=expired_at, finished_at=MADE,
                           width=600, height=400, bytes=1234, render_ms=12, error_code=error_code,
                           error_message="it went wrong" if error_code else None, error_details=error_details)


@pytest.mark.parametrize(
    ("row", "shown", "with_file"),
    [
        (item("completed"), "completed", True),
        (item("completed", expired_at=EXPIRED), "expired", False),
        (item("completed", output_key=None), "completed", False),
        (item("failed", output_key=None, error_code="render_timeout"), "failed", False),
        (item("failed", output_key=None, expired_at=EXPIRED), "failed", False),  # only completed items expire
        (item("queued", output_key=None), "queued", False),
        (item("rendering", output_key=None), "rendering", False),
        (item("cancelled", output_key=None), "cancelled", False),
    ],
)
def test_shown_status_and_has_file(row: SimpleNamespace, shown: str, with_file: bool) -> None:
    assert shown_status(row) == shown
    assert has_file(row) is with_file


def fake_link(key: str, made_at: datetime | None) -> str:
    return f"https://files.test/{key}?made={made_at:%Y%m%d%H%M%S}"


def test_item_result_of_a_completed_item_links_its_file() -> None:
    assert item_result(item("completed"), fake_link) == {
        "index": 4, "status": "completed", "url": "https://files.test/batches/b/0.png?made=20300102030405",
        "width": 600, "height": 400, "bytes": 1234, "renderTimeMs": 12, "error": None,
    }


@pytest.mark.parametrize(
    ("row", "status", "error"),
    [
        (item("completed", expired_at=EXPIRED), "expired", None),
        (item("failed", output_key=None, error_code="missing_variable"), "failed",
         {"code": "missing_variable", "message": "it went wrong"}),
        # The details come beside code and message, as in errors.jsonl.
        (item("failed", output_key=None, error_code="invalid_value", error_details={"column": "price", "value": "x"}),
         "failed", {"code": "invalid_value", "message": "it went wrong", "column": "price", "value": "x"}),
        (item("cancelled", output_key=None), "cancelled", None),
    ],
)
def test_item_result_without_a_file_has_no_link(row: SimpleNamespace, status: str, error: dict | None) -> None:
    def no_link(key: str, made_at: datetime | None) -> str:
        raise AssertionError("no link for an item without a file")

    result = item_result(row, no_link)
    assert (result["status"], result["url"], result["error"]) == (status, None, error)


def test_batch_summary_counts_every_state() -> None:
    batch = SimpleNamespace(uid="batch_1", template_uid="tpl_1", template_version=3, status="processing",
                            format="png", total_items=10, created_at=MADE, started_at=MADE, completed_at=None)
    counts = {"completed": 4, "failed": 1, "cancelled": 2, "queued": 2, "rendering": 1}
    assert batch_summary(batch, counts) == {
        "batchId": "batch_1", "templateUid": "tpl_1", "templateVersion": 3, "status": "processing",
        "format": "png", "totalItems": 10, "completedCount": 4, "failedCount": 1, "cancelledCount": 2,
        "pendingCount": 3, "createdAt": "2030-01-02T03:04:05+00:00", "startedAt": "2030-01-02T03:04:05+00:00",
        "completedAt": None,
    }
    assert batch_summary(batch, {})["pendingCount"] == 0
