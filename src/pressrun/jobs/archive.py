"""Streaming ZIP archives of a batch's outputs: the API's download route builds them on the fly, and
``pressrun render --zip`` writes the same archive (every file, plus a manifest.csv line per row).

A batch may hold 50,000 files, so the archive is never assembled in memory or on disk: ``zipfile``
writes into a write-only sink (it then uses data descriptors instead of seeking back to patch sizes)
and the generator hands out whatever the sink holds after every chunk. What stays in memory is one
chunk of file data, at most 1 MiB of manifest before it spills to a temporary file, and what
``zipfile`` keeps for the central directory it writes at the end: a ``ZipInfo`` per member, about
400 bytes each (some 20 MiB for 50,000 files), which is independent of the files' sizes.
"""

from __future__ import annotations

import csv
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from pressrun.models import SHOWN_EXPIRED

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("index", "file", "status", "error_code", "error_message")
EXPIRED_STATUS = SHOWN_EXPIRED  # a file deleted between listing and reading shows as its item would

# Already-compressed formats: deflating them again only costs CPU.
STORED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
MANIFEST_MEMORY_BYTES = 1 << 20
_MEMBER_MODE = (stat.S_IFREG | 0o644) << 16
_EARLIEST_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArchiveEntry:
    """One batch item as the archive sees it; ``name`` and ``path`` are both set when it has a file."""

    index: int
    status: str
    name: str | None
    path: Path | None
    error_code: str | None = None
    error_message: str | None = None


class _ChunkSink:
    """A write-only file object: ``zipfile`` writes into it, the generator drains it."""

    def __init__(self) -> None:
        # One growing buffer rather than a list of parts: closing the archive writes the central
        # directory as three small pieces per member, and 50,000 separate bytes objects would cost
        # several times the directory's own size.
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            yield data


def stream_zip(entries: Iterable[ArchiveEntry], *, extras: Iterable[tuple[str, Path]] = (),
               chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Yield the bytes of a ZIP archive holding every entry that has a file, plus a manifest.csv
    (columns: index, file, status, error_code, error_message) with one line per entry, files or not,
    in the order given. Memory stays bounded: files are read in chunks; nothing is buffered beyond a chunk or two.

    ``extras``: (name, path) of further files to add after the entries' (the CLI adds its errors.jsonl).
    ``entries`` is consumed lazily, once. A file that has vanished since it was listed (the retention
    sweeper deleted it) is left out and its manifest line says ``expired``; any other I/O error ends
    the stream with that error.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
    sink = _ChunkSink()
    with (
        tempfile.SpooledTemporaryFile(
            max_size=MANIFEST_MEMORY_BYTES, mode="w+", encoding="utf-8", newline=""
        ) as manifest,
        zipfile.ZipFile(sink, "w") as archive,
    ):
        manifest_rows = csv.writer(manifest)
        manifest_rows.writerow(MANIFEST_COLUMNS)
        for entry in entries:
            status, file_name = entry.status, None
            if entry.name is not None and entry.path is not None:
                if (yield from _write_file(archive, sink, entry.name, entry.path, chunk_size)):
                    file_name = entry.name
                else:
                    status = EXPIRED_STATUS
            manifest_rows.writerow(
                [entry.index, inert(file_name or ""), status, entry.error_code or "", inert(entry.error_message or "")]
            )
        for name, path in extras:
            yield from _write_file(archive, sink, name, path, chunk_size)
        manifest.seek(0)
        yield from _write_manifest(archive, sink, manifest, chunk_size)
    # Leaving the ZipFile block wrote the central directory.
    yield from sink.drain()


# A cell that starts with one of these is a formula to Excel, LibreOffice and Google Sheets: a file
# name or error message made from row data could run one (CSV injection) when the manifest is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would take it for a formula (OWASP's advice:
    the apostrophe itself is hidden by the spreadsheet and the text is shown as it was)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _write_file(
    archive: zipfile.ZipFile, sink: _ChunkSink, name: str, path: Path, chunk_size: int
) -> Generator[bytes, None, bool]:
    """Copy one file into the archive chunk by chunk; return False when it no longer exists."""
    try:
        source: BinaryIO = path.open("rb")
    except FileNotFoundError:
        return False
    with source:
        # Opened first, then sized: once open, a concurrent delete cannot take the data away.
        file_stat = os.fstat(source.fileno())
        info = zipfile.ZipInfo(name, date_time=_zip_time(file_stat.st_mtime))
        info.file_size = file_stat.st_size  # lets zipfile pick ZIP64 headers for files over 2 GiB
        info.compress_type = compression_for(name)
        info.external_attr = _MEMBER_MODE
        with archive.open(info, "w") as member:
            yield from sink.drain()
            while chunk := source.read(chunk_size):
                member.write(chunk)
                yield from sink.drain()
    yield from sink.drain()
    return True


def _write_manifest(archive: zipfile.ZipFile, sink: _ChunkSink, manifest: IO[str], chunk_size: int) -> Iterator[bytes]:
    info = zipfile.ZipInfo(MANIFEST_NAME, date_time=_zip_time(time.time()))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = _MEMBER_MODE
    with archive.open(info, "w", force_zip64=True) as member:
        while text := manifest.read(chunk_size):
            member.write(text.encode("utf-8"))
            yield from sink.drain()
    yield from sink.drain()


def compression_for(name: str) -> int:
    """ZIP_STORED for image formats that are compressed already, ZIP_DEFLATED for the rest (PDFs)."""
    return zipfile.ZIP_STORED if Path(name).suffix.lower() in STORED_SUFFIXES else zipfile.ZIP_DEFLATED


def _zip_time(timestamp_s: float) -> tuple[int, int, int, int, int, int]:
    # ZIP timestamps cannot predate 1980; a file with an older mtime would otherwise raise.
    local = time.localtime(timestamp_s)
    if local.tm_year < 1980:
        return _EARLIEST_ZIP_TIME
    return (local.tm_year, local.tm_mon, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec)
