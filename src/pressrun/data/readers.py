"""Data files (CSV/TSV, JSON, JSONL, XLSX) -> a re-iterable, streaming sequence of :class:`Row`.

The one seam where OS, ``csv``, ``json`` and openpyxl exceptions become ours: a :class:`DataError` (names
the file and line) when the file is unusable as a whole, an :class:`InvalidValueError` on ``Row.error``
when one row is bad and the run goes on. Nothing is loaded whole: CSV/JSONL a line at a time, a JSON
array one element at a time (``raw_decode`` over a sliding window), XLSX via openpyxl's read-only mode;
each iteration re-opens the file. Decisions:

- ``Row.number`` counts data rows from 1 (header, blank lines and empty sheet rows not counted);
  ``Row.line`` is the physical line where the row starts, or the sheet row number for XLSX.
- CSV: UTF-8, BOM or not; delimiter = the most frequent of ``,`` ``;`` tab outside quotes in the header
  line (``,`` on a tie; always tab for ``.tsv``). Quoting is strict: a stray or unclosed quote is a
  DataError, never silently merged rows. A record of blank fields is skipped like a blank line. More
  non-empty fields than the header -> row error; fewer -> the trailing keys are absent, so a strict
  template reports ``missing_variable`` for exactly the missing cells. Values are strings.
- XLSX: first worksheet, first non-empty row is the header, cached formula values; an empty cell is
  ``""`` as in CSV (``None`` only in a typed column), also a trailing one openpyxl leaves out (empty or
  merged cells at the end of a row), so every header column is present. Empty columns left of the
  header (a table starting in column B) are skipped. A midnight datetime in a cell with a date-only
  number format is a ``date`` (Excel stores dates as datetimes).
- JSON: the top level must be an array of objects (no ``{"rows": [...]}`` wrapper). A non-object
  element is a row error; a syntax error is a DataError (the parser cannot resynchronise).
- JSONL: one object per line, blank lines skipped; a line that is not JSON counts as a row carrying
  the error, so row numbers keep matching the data lines.
- Reader row errors say ``row N ...``; type errors say ``column 'x': ...`` (callers prefix the row).
  All carry ``row``, ``line`` and ``file`` details.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import json
import re
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from pressrun.data.types import (
    ColumnLayout,
    ColumnType,
    apply_column_types,
    not_an_object_error,
    parse_column_types,
)
from pressrun.errors import DataError, InvalidValueError, RowError, UsageError

__all__ = ["EXTENSIONS", "FORMATS", "Row", "RowSource", "open_rows"]

EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx"}
FORMATS = ["csv", "json", "jsonl", "xlsx"]
_FORMAT_ALIASES = {"tsv": "csv", "ndjson": "jsonl"}
_CHUNK_CHARS = 1 << 16
# One JSON element larger than this is refused, so a broken file cannot make the window grow unbounded.
_MAX_ELEMENT_CHARS = 1 << 25
_QUOTED = re.compile(r'"[^"]*"?')
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
_DECODER = json.JSONDecoder()
_TOP_LEVEL_KINDS = {"{": "an object", '"': "a string", "t": "a boolean", "f": "a boolean", "n": "null"}


@dataclass(frozen=True)
class Row:
    """One data row. ``error`` is set when this row alone is bad; the run goes on."""

    number: int
    values: dict[str, Any]
    error: RowError | None = None
    line: int | None = None


class RowSource:
    """Iterable of :class:`Row`; each iteration re-opens the file and streams it again."""

    def __init__(self, path: Path, format: str, column_types: Mapping[str, ColumnType], delimiter: str | None):
        self.path = path
        self.format = format
        self.column_types = dict(column_types)
        #: Header columns for csv/xlsx (as read by the latest pass over the file); None for json/jsonl.
        self.columns: list[str] | None = None
        self._delimiter = delimiter
        self._label = path.name

    def __repr__(self) -> str:
        return f"RowSource({str(self.path)!r}, format={self.format!r})"

    def __iter__(self) -> Iterator[Row]:
        for row in self._rows():
            if self.column_types and row.error is None:
                error = apply_column_types(row.values, self.column_types)
                if error is not None:
                    error.details.update(row=row.number, line=row.line, file=self._label)
                    row = replace(row, error=error)
            yield row

    def count(self) -> int:
        """Stream the whole file once, checking its structure; raise :class:`DataError` if it is unusable."""
        return sum(1 for _ in self._rows())

    def _rows(self) -> Iterator[Row]:
        """Rows as read, before column types; a text file's decoding error becomes a DataError with its line."""
        try:
            yield from _READERS[self.format](self)
        except UnicodeDecodeError as exc:
            raise _utf8_error(self.path, self._label) from exc


def open_rows(
    path: str | Path, *, column_types: Mapping[str, str] | None = None, format: str | None = None
) -> RowSource:
    """Open a data file as a :class:`RowSource`, reading only as far as the first row.

    The format is ``format`` (csv, tsv, json, jsonl, ndjson, xlsx) or comes from the extension. Raises
    :class:`DataError` for a missing or unreadable file, an unknown extension, no header or no rows, a bad
    header, or an unknown type in ``column_types``; :class:`UsageError` for a bad ``format``.
    """
    path = Path(path)
    label = path.name
    fmt = _resolve_format(path, format)
    types = parse_column_types(column_types or {}, file=label)
    if not path.exists():
        raise DataError(f"{label}: file not found", file=label)
    if path.is_dir():
        raise DataError(f"{label} is a directory, not a data file", file=label)
    tsv = path.suffix.lower() == ".tsv" or (format or "").strip().lower() == "tsv"
    source = RowSource(path, fmt, types, "\t" if tsv else None)
    with closing(source._rows()) as rows:
        first = next(rows, None)
    if first is None:
        empty = f"{label} has no rows: the array is empty" if fmt == "json" else f"{label} is empty: no rows"
        raise DataError(f"{label} has a header but no data rows" if source.columns else empty, file=label)
    return source


def _resolve_format(path: Path, format: str | None) -> str:
    if format is not None:
        name = _FORMAT_ALIASES.get(format.strip().lower(), format.strip().lower())
        if name in FORMATS:
            return name
        valid = f"valid formats are {', '.join(FORMATS)}"
        raise UsageError(f"format: {format!r} is not a data format; {valid}", field="format", value=format, valid=FORMATS)
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    kind = f"unknown data file type {suffix!r}" if suffix else "no file extension"
    valid = f"valid extensions are {', '.join(EXTENSIONS)}"
    raise DataError(f"{path.name}: {kind}; {valid}", file=path.name, value=suffix, valid=list(EXTENSIONS))


def _at(label: str, line: int, why: str) -> DataError:
    return DataError(f"{label} line {line}: {why}", file=label, line=line)


# --- text files --------------------------------------------------------------------------------------


def _open_text(source: RowSource, *, newline: str | None) -> IO[str]:
    try:
        raw = source.path.open("rb")
    except OSError as exc:
        raise DataError(f"{source._label} cannot be read: {exc.strerror}", file=source._label) from exc
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline=newline)


def _utf8_error(path: Path, label: str) -> DataError:
    # TextIOWrapper decodes in chunks and does not know lines, so find the first bad byte again.
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0
    with path.open("rb") as raw:
        while True:
            chunk = raw.read(_CHUNK_CHARS)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                line = newlines + data.count(b"\n", 0, exc.start) + 1
                position = offset - len(pending) + exc.start
                byte = data[exc.start]
                return _at(label, line, f"not valid UTF-8 (byte 0x{byte:02x} at offset {position}); save the file as UTF-8")
            if not chunk:
                return DataError(f"{label}: not valid UTF-8; save the file as UTF-8", file=label)
            offset += len(chunk)
            newlines += chunk.count(b"\n")


# --- CSV ---------------------------------------------------------------------------------------------


def _sniff_delimiter(header_line: str) -> str:
    unquoted = _QUOTED.sub("", header_line)
    return max(",;\t", key=unquoted.count)  # max() keeps the first on a tie, so "," wins


def _csv_error(label: str, exc: csv.Error, start: int, current: int) -> DataError:
    text = str(exc)
    if "unexpected end of data" in text:
        line, why = start, 'a quoted field starts on this line but its closing quote (") is missing'
    elif "field limit" in text:
        line, why = start, f'a field is longer than {csv.field_size_limit()} characters; is a quote (") left open?'
    elif "expected after" in text:
        line, why = current, 'a closing quote (") is followed by more text; write a quote inside a quoted field as ""'
    else:
        line, why = current, f"malformed CSV ({text})"
    return _at(label, line, why)


def _csv_rows(source: RowSource) -> Iterator[Row]:
    label = source._label
    with _open_text(source, newline="") as text:
        skipped = 0
        first = text.readline()
        while first and not first.strip():
            skipped, first = skipped + 1, text.readline()
        if not first:
            raise DataError(f"{label} is empty: no header row", file=label)
        delimiter = source._delimiter or _sniff_delimiter(first)
        reader = csv.reader(itertools.chain([first], text), delimiter=delimiter, strict=True)
        layout: ColumnLayout | None = None
        number = 0
        while True:
            start = skipped + reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _csv_error(label, exc, start, skipped + reader.line_num) from exc
            if any("\x00" in field for field in fields):
                raise _at(label, start, "contains a NUL byte, so it is not a text CSV file; save it as CSV UTF-8")
            if not any(field.strip() for field in fields):
                continue
            if layout is None:
                layout = ColumnLayout.from_header(fields, file=label, where=f"line {start}")
                source.columns = list(layout.names)
                continue
            number += 1
            yield Row(number, layout.build(fields), layout.extra_fields_error(fields, number, start, label), start)


# --- JSON and JSONL ----------------------------------------------------------------------------------


def _json_row(value: Any, number: int, line: int, label: str) -> Row:
    if isinstance(value, dict):
        return Row(number, value, None, line)
    return Row(number, {}, not_an_object_error(value, number, line, label), line)


class _JsonWindow:
    """A sliding window over a text file, decoding one JSON value at a time and counting lines."""

    def __init__(self, text: IO[str], label: str) -> None:
        self.text, self.label = text, label
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def _more(self, size: int) -> bool:
        chunk = "" if self.eof else self.text.read(max(size, _CHUNK_CHARS))
        if not chunk:
            self.eof = True
            return False
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return True

    def peek(self) -> str | None:
        """Skip whitespace; return the next character, or None at the end of the file."""
        while True:
            end = _WHITESPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more(_CHUNK_CHARS):
                return None

    def decode(self) -> Any:
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                # A bare number may go on in the next chunk: "1" + "2", "1e" + "5" ("1e" decodes as 1).
                numeric = isinstance(value, int | float)
                if self.eof or not numeric or _NUMBER_CHARS.match(self.buf, end).end() < len(self.buf):  # type: ignore[union-attr]
                    break
            except json.JSONDecodeError as exc:
                truncated = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 16
                if self.eof or not truncated:
                    line = self.line + self.buf.count("\n", self.pos, exc.pos)
                    raise _at(self.label, line, f"not valid JSON ({exc.msg})") from exc
            except (ValueError, RecursionError) as exc:  # valid JSON, but more than the decoder reads
                raise _at(self.label, self.line, f"not readable JSON ({unreadable_json(exc)})") from exc
            if len(self.buf) - self.pos > _MAX_ELEMENT_CHARS:
                raise _at(self.label, self.line, f"a row is larger than {_MAX_ELEMENT_CHARS} characters")
            self._more(len(self.buf) - self.pos)
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end
        return value


def _json_rows(source: RowSource) -> Iterator[Row]:
    label = source._label
    with _open_text(source, newline=None) as text:
        window = _JsonWindow(text, label)
        char = window.peek()
        if char is None:
            raise DataError(f"{label} is empty: expected an array of objects", file=label)
        if char != "[":
            kind = _TOP_LEVEL_KINDS.get(char, "a number" if char in "-0123456789" else "not JSON")
            hint = "; if it holds one object per line, name it .jsonl" if char == "{" else ""
            raise DataError(
                f"{label}: the top level is {kind}, expected an array of objects like [{{...}}, {{...}}]"
                f" (a wrapper such as {{\"rows\": [...]}} is not supported){hint}",
                file=label,
                line=window.line,
            )
        window.pos += 1
        number = 0
        char = window.peek()
        while char != "]":
            if char is None:
                raise _at(label, window.line, "the file ends before the closing ]")
            number += 1
            line = window.line
            yield _json_row(window.decode(), number, line, label)
            char = window.peek()
            if char == ",":
                window.pos += 1
                char = window.peek()
                if char == "]":
                    raise _at(label, window.line, "a trailing comma before ]")
            elif char != "]":
                found = "the file ends" if char is None else f"found {char!r}"
                raise _at(label, window.line, f"expected ',' or ']' after row {number}, {found}")
        window.pos += 1
        if window.peek() is not None:
            raise _at(label, window.line, "unexpected content after the closing ]")


def _jsonl_rows(source: RowSource) -> Iterator[Row]:
    label = source._label
    with _open_text(source, newline=None) as text:
        number = 0
        for line, content in enumerate(text, 1):
            if not content.strip():
                continue
            number += 1
            try:
                value = json.loads(content)
            except (ValueError, RecursionError) as exc:  # one bad line fails its row, whatever the reason
                why = f"row {number} (line {line}) is not valid JSON: {unreadable_json(exc)}"
                yield Row(number, {}, InvalidValueError(why, row=number, line=line, file=label), line)
            else:
                yield _json_row(value, number, line, label)


def unreadable_json(exc: ValueError | RecursionError) -> str:
    """Why Python's JSON decoder gave up, in a reader's terms (it also raises for what is valid JSON
    but more than it will read: a number past 4,300 digits, nesting past the recursion limit)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a number with more digits than pressrun reads (4,300)" if "digits" in str(exc) else str(exc)[:200]


# --- XLSX --------------------------------------------------------------------------------------------


# An .xlsx is a ZIP of XML. Before openpyxl opens one, its members' declared sizes are checked: a
# 1.9 MB workbook holding 1.5 GB of shared strings took 2.5 GB to parse (a zip bomb).
MAX_XLSX_UNCOMPRESSED = 512 * 2**20  # all members together, uncompressed
MAX_XLSX_RATIO = 200  # a member larger than 1 MiB may expand at most this much (XML: usually 5-30x)


def check_xlsx_sizes(path: Path, label: str) -> None:
    """Refuse a workbook whose members would expand past the limits, from the ZIP's own directory
    (the sizes it declares; zipfile stops reading a member past its declared size)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        return  # openpyxl says what is wrong with it
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 2**20 and ratio > MAX_XLSX_RATIO:
            raise DataError(f"{label}: {member.filename} would expand {ratio:.0f} times, to {member.file_size:,} bytes; "
                            f"a workbook member may expand at most {MAX_XLSX_RATIO} times (a zip bomb?)", file=label)
    if total > MAX_XLSX_UNCOMPRESSED:
        raise DataError(f"{label} holds {total:,} bytes of XML uncompressed, more than {MAX_XLSX_UNCOMPRESSED:,}; "
                        "split it, or save it as CSV", file=label)


def _xlsx_rows(source: RowSource) -> Iterator[Row]:
    import openpyxl  # imported here: it is slow to import and only XLSX needs it
    from openpyxl.utils.exceptions import InvalidFileException

    label = source._label
    invalid = f"{label} is not a valid .xlsx workbook"
    check_xlsx_sizes(source.path, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # style/extension warnings say nothing about the data
            workbook = openpyxl.load_workbook(source.path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, ET.ParseError) as exc:
        raise DataError(f"{invalid}; save it as Excel Workbook (.xlsx)", file=label) from exc
    except OSError as exc:
        raise DataError(f"{label} cannot be read: {exc.strerror or exc}", file=label) from exc
    layout: ColumnLayout | None = None
    number = 0
    first_column = 0  # empty columns left of the table (a table that starts in column B)
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # saved dimensions are often wrong; read what is there
        for sheet_row, row_cells in enumerate(sheet.iter_rows(), 1):
            cells = [_xlsx_value(cell) for cell in row_cells]
            if all(_blank(cell) for cell in cells):
                continue
            if layout is None:
                while _blank(cells[first_column]):
                    first_column += 1
                layout = ColumnLayout.from_header(cells[first_column:], file=label, where=f"row {sheet_row}")
                source.columns = list(layout.names)
                continue
            number += 1
            error = _left_of_table_error(cells[:first_column], number, sheet_row, label)
            # openpyxl ends a row at its last stored cell: pad as CSV has "" for an empty trailing cell.
            fields = ["" if cell is None else cell for cell in cells[first_column:]]
            fields += [""] * (len(layout.names) - len(fields))
            error = error or layout.extra_fields_error(fields, number, sheet_row, label)
            yield Row(number, layout.build(fields), error, sheet_row)
    except (IndexError, zipfile.BadZipFile, KeyError, ET.ParseError) as exc:
        raise DataError(f"{invalid}: its first worksheet cannot be read", file=label) from exc
    finally:
        workbook.close()
    if layout is None:
        raise DataError(f"{label} is empty: no header row", file=label)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _xlsx_value(cell: Any) -> Any:
    """A cell's value; a midnight datetime in a date-only formatted cell (how Excel stores a date)
    is a ``date``, so it prints as 2024-03-05, not 2024-03-05 00:00:00."""
    value = cell.value
    if isinstance(value, dt.datetime) and value.time() == dt.time() and value.tzinfo is None:
        from openpyxl.styles.numbers import is_datetime

        if is_datetime(getattr(cell, "number_format", None) or "General") == "date":
            return value.date()
    return value


def _left_of_table_error(cells: list[Any], number: int, line: int, file: str) -> InvalidValueError | None:
    """A value in a column left of the header's first named column has no name to go by."""
    for position, cell in enumerate(cells, 1):
        if not _blank(cell):
            return InvalidValueError(
                f"row {number} has a value in column {_column_letter(position)}, left of the table's first"
                f" column ({_column_letter(len(cells) + 1)}), which has no header",
                row=number,
                line=line,
                file=file,
                column=_column_letter(position),
            )
    return None


def _column_letter(position: int) -> str:
    letters = ""
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


_READERS: dict[str, Callable[[RowSource], Iterator[Row]]]
_READERS = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows, "xlsx": _xlsx_rows}
