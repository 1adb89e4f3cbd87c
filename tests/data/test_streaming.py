"""Memory stays flat however many rows a file has, and a RowSource can be iterated again and again."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from pressrun.data import RowSource, open_rows

ROWS = 50_000
PEAK_LIMIT_BYTES = 5 * 1024 * 1024


def record(i: int) -> dict[str, object]:
    return {"id": i, "name": f"Person {i}", "email": f"person{i}@example.com", "note": "x" * 80}


def write_csv(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id,name,email,note\n")
        for i in range(1, ROWS + 1):
            r = record(i)
            out.write(f"{r['id']},{r['name']},{r['email']},{r['note']}\n")
    return path


def write_jsonl(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(1, ROWS + 1):
            out.write(json.dumps(record(i)) + "\n")
    return path


def write_json(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("[\n")
        for i in range(1, ROWS + 1):
            out.write(json.dumps(record(i)) + (",\n" if i < ROWS else "\n"))
        out.write("]\n")
    return path


def peak_while(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def drain(source: RowSource) -> int:
    last = 0
    for row in source:
        assert row.error is None
        last = row.number
    return last


@pytest.mark.parametrize(
    ("name", "writer"),
    [("data.csv", write_csv), ("data.jsonl", write_jsonl), ("data.json", write_json)],
)
def test_big_file_streams_in_flat_memory(tmp_path: Path, name: str, writer: Callable[[Path], Path]) -> None:
    path = writer(tmp_path / name)
    assert path.stat().st_size > PEAK_LIMIT_BYTES  # the file alone would not fit under the limit
    source = open_rows(path, column_types={"id": "integer"})

    assert peak_while(lambda: drain(source)) < PEAK_LIMIT_BYTES
    assert peak_while(source.count) < PEAK_LIMIT_BYTES
    assert source.count() == ROWS
    assert drain(source) == ROWS


def test_xlsx_streams_in_flat_memory(tmp_path: Path) -> None:
    rows = 5_000
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["id", "name", "email", "note"])
    for i in range(1, rows + 1):
        sheet.append(list(record(i).values()))
    workbook.save(tmp_path / "data.xlsx")
    source = open_rows(tmp_path / "data.xlsx")

    assert peak_while(lambda: drain(source)) < PEAK_LIMIT_BYTES
    assert source.count() == rows


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.csv", "id,name\n1,Ann\n\n2,Bob\n3,\"C\ny\"\n"),
        ("data.json", '[{"id": "1"}, {"id": "2"}, 3]'),
        ("data.jsonl", '{"id": "1"}\n\nnot json\n{"id": "3"}\n'),
    ],
)
def test_iterating_twice_gives_the_same_rows(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    source = open_rows(path, column_types={"id": "int"})
    first = [(row.number, row.line, row.values, str(row.error)) for row in source]
    second = [(row.number, row.line, row.values, str(row.error)) for row in source]
    assert first == second
    assert len(first) == source.count() == 3


def test_abandoned_iteration_does_not_disturb_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("id\n1\n2\n3\n", encoding="utf-8")
    source = open_rows(path)
    partial = iter(source)
    assert next(partial).number == 1
    assert [row.number for row in source] == [1, 2, 3]
    assert next(partial).number == 2
