"""The streamed batch ZIP: right members and manifest, vanished files tolerated, memory bounded."""

from __future__ import annotations

import csv
import io
import os
import tracemalloc
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pressrun.jobs.archive import ArchiveEntry, stream_zip

MANIFEST = "manifest.csv"


def build_zip(entries: Iterable[ArchiveEntry], chunk_size: int = 1 << 16) -> zipfile.ZipFile:
    """Consume the stream as a socket would, front to back, then open the joined bytes."""
    chunks = list(stream_zip(entries, chunk_size=chunk_size))
    assert all(chunks), "the stream must not yield empty chunks"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None  # every member's CRC matches
    return archive


def manifest_rows(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    text = archive.read(MANIFEST).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == ["index", "file", "status", "error_code", "error_message"]
    return list(reader)


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def completed(index: int, name: str, path: Path) -> ArchiveEntry:
    return ArchiveEntry(index=index, status="completed", name=name, path=path)


@pytest.fixture
def mixed_batch(tmp_path: Path) -> tuple[list[ArchiveEntry], dict[str, bytes]]:
    contents = {
        "invoice-0.pdf": b"%PDF-1.7\n" + b"stream of text " * 500,
        "card-2.png": os.urandom(3000),
        "photo-3.JPG": os.urandom(10),
        "empty-5.webp": b"",
    }
    paths = {name: write_file(tmp_path / name, data) for name, data in contents.items()}
    entries = [
        completed(0, "invoice-0.pdf", paths["invoice-0.pdf"]),
        ArchiveEntry(1, "failed", None, None, "template_error", "Row 2: 'total' is undefined, check\n\"columns\""),
        completed(2, "card-2.png", paths["card-2.png"]),
        completed(3, "photo-3.JPG", paths["photo-3.JPG"]),
        ArchiveEntry(4, "cancelled", None, None),
        completed(5, "empty-5.webp", paths["empty-5.webp"]),
        ArchiveEntry(6, "pending", None, None),
    ]
    return entries, contents


def test_archive_holds_exactly_the_files_and_a_manifest_row_per_entry(mixed_batch):
    entries, contents = mixed_batch
    archive = build_zip(entries)

    assert sorted(archive.namelist()) == sorted([*contents, MANIFEST])
    assert archive.namelist()[-1] == MANIFEST  # written last, after every file
    for name, data in contents.items():
        assert archive.read(name) == data
    assert [(r["index"], r["file"], r["status"]) for r in manifest_rows(archive)] == [
        ("0", "invoice-0.pdf", "completed"),
        ("1", "", "failed"),
        ("2", "card-2.png", "completed"),
        ("3", "photo-3.JPG", "completed"),
        ("4", "", "cancelled"),
        ("5", "empty-5.webp", "completed"),
        ("6", "", "pending"),
    ]


def test_failed_rows_carry_their_error_code_and_message(mixed_batch):
    entries, _ = mixed_batch
    failed = manifest_rows(build_zip(entries))[1]
    # Commas, quotes and newlines in messages survive CSV quoting.
    assert failed == {
        "index": "1",
        "file": "",
        "status": "failed",
        "error_code": "template_error",
        "error_message": "Row 2: 'total' is undefined, check\n\"columns\"",
    }


def test_images_are_stored_while_pdfs_and_the_manifest_are_deflated(mixed_batch):
    entries, _ = mixed_batch
    archive = build_zip(entries)
    methods = {info.filename: info.compress_type for info in archive.infolist()}
    assert methods == {
        "invoice-0.pdf": zipfile.ZIP_DEFLATED,
        "card-2.png": zipfile.ZIP_STORED,
        "photo-3.JPG": zipfile.ZIP_STORED,
        "empty-5.webp": zipfile.ZIP_STORED,
        MANIFEST: zipfile.ZIP_DEFLATED,
    }
    pdf = archive.getinfo("invoice-0.pdf")
    assert pdf.compress_size < pdf.file_size


def test_manifest_follows_the_given_order_not_the_index(tmp_path):
    entries = [ArchiveEntry(i, "failed", None, None, "render_timeout", "took too long") for i in (7, 2, 5)]
    assert [r["index"] for r in manifest_rows(build_zip(entries))] == ["7", "2", "5"]


def test_a_file_missing_when_its_turn_comes_is_listed_as_expired(tmp_path):
    first = write_file(tmp_path / "a.png", b"first")
    gone = tmp_path / "never-existed.png"
    entries = [completed(0, "a.png", first), completed(1, "b.png", gone)]

    archive = build_zip(entries)

    assert sorted(archive.namelist()) == ["a.png", MANIFEST]
    rows = manifest_rows(archive)
    assert [(r["file"], r["status"]) for r in rows] == [("a.png", "completed"), ("", "expired")]


def test_a_file_deleted_by_the_sweeper_mid_stream_does_not_break_it(tmp_path):
    paths = [write_file(tmp_path / f"{i}.pdf", f"page {i}".encode()) for i in range(3)]
    entries = [completed(i, p.name, p) for i, p in enumerate(paths)]

    chunks = []
    for chunk in stream_zip(entries):
        if not chunks:  # the stream has started on file 0; file 1 is swept before its turn
            paths[1].unlink()
        chunks.append(chunk)

    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["0.pdf", "2.pdf", MANIFEST]
    assert archive.read("2.pdf") == b"page 2"
    assert [r["status"] for r in manifest_rows(archive)] == ["completed", "expired", "completed"]


def test_an_empty_batch_gives_an_archive_with_only_a_header_row_manifest():
    archive = build_zip([])
    assert archive.namelist() == [MANIFEST]
    assert manifest_rows(archive) == []


def test_tiny_chunks_give_the_same_archive_content(mixed_batch):
    entries, contents = mixed_batch
    archive = build_zip(entries, chunk_size=7)
    assert {name: archive.read(name) for name in contents} == contents
    assert len(manifest_rows(archive)) == len(entries)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk_size"):
        list(stream_zip([], chunk_size=0))


def test_entries_are_consumed_lazily(tmp_path):
    path = write_file(tmp_path / "f.png", b"x" * 100)
    pulled = 0

    def cursor() -> Iterator[ArchiveEntry]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield completed(i, f"f{i}.png", path)

    stream = stream_zip(cursor())
    next(stream)
    assert pulled == 1  # bytes flow before the whole batch has been read
    rest = list(stream)
    assert pulled == 1000
    assert rest


FILE_COUNT = 2_000
FILE_BYTES = 64 * 1024


def test_memory_stays_far_below_the_archive_size(tmp_path):
    block = os.urandom(FILE_BYTES)
    sources = tmp_path / "outputs"
    sources.mkdir()
    paths = [write_file(sources / f"item-{i:05d}.png", block) for i in range(FILE_COUNT)]
    total_bytes = FILE_COUNT * FILE_BYTES

    def cursor() -> Iterator[ArchiveEntry]:
        for i, path in enumerate(paths):
            yield completed(i, path.name, path)

    # Chunks go straight to disk, as they would go to a socket, so only the stream's own memory counts.
    out_path = tmp_path / "batch.zip"
    tracemalloc.start()
    try:
        with out_path.open("wb") as out:
            for chunk in stream_zip(cursor()):
                out.write(chunk)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak_bytes < total_bytes / 10, f"peak {peak_bytes / 2**20:.1f} MiB for {total_bytes / 2**20:.0f} MiB"
    with zipfile.ZipFile(out_path) as archive:
        assert len(archive.namelist()) == FILE_COUNT + 1
        assert archive.read("item-01999.png") == block
        assert len(manifest_rows(archive)) == FILE_COUNT


def test_manifest_cells_a_spreadsheet_would_run_as_formulas_are_made_inert(tmp_path):
    name = "=HYPERLINK(\"http-evil\",\"open\").png"
    entries = [
        completed(0, name, write_file(tmp_path / "card.png", b"png")),
        ArchiveEntry(1, "failed", None, None, "render_error", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ArchiveEntry(2, "failed", None, None, "render_error", "a value of -3 is not allowed"),
    ]
    archive = build_zip(entries)
    rows = manifest_rows(archive)
    assert rows[0]["file"] == "'" + name and name in archive.namelist()  # the member keeps its name
    assert rows[1]["error_message"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert rows[2]["error_message"] == "a value of -3 is not allowed"  # only a leading sign counts
