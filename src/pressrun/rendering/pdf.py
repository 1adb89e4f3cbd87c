"""PDF post-processing: merging per-row PDFs into one, counting pages.

Merging streams. pypdf's PdfWriter keeps every page of the result in memory until it writes,
which for a 50,000-row run is tens of gigabytes; here each source is read with pypdf, the objects
its pages need are written straight to the output under new numbers, and the source is dropped.
What stays in memory is one file offset per object written and one reference per page, so memory
does not grow with the size of the run, only (a few bytes) with its length.
"""

from __future__ import annotations

import gc
import io
import os
import secrets
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NullObject,
    PdfObject,
)

CATALOG, PAGES = 1, 2  # object numbers reserved for the merged document's own catalog and page tree
COLLECT_EVERY = 16
MAX_OFFSET = 10**10  # a cross-reference entry holds a 10-digit byte offset
HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"  # the binary comment tells transfer tools this is not text


class UnmergeablePdfError(ValueError):
    """A source that cannot be merged: unreadable, encrypted or malformed (the message names it)."""


class OffsetOverflowError(ValueError):
    """The merged file outgrew what a classic cross-reference table can address."""


def xref_entry(offset: int) -> str:
    """One 20-byte cross-reference line: in use at ``offset``, or free (0: reserved, never written)."""
    return f"{offset:010d} 00000 n \n" if offset else "0000000000 65535 f \n"


class PdfMerger:
    """Writes a PDF made of the pages of the PDFs given to :meth:`add`, in order, as it goes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._start = out.tell()
        self._offsets = array("q", [0, 0])  # byte offset of each object, numbers 1..n; 1 and 2 come last
        self._kids = array("q")  # object numbers of the pages, in order
        self._added = 0
        out.write(HEADER)

    @property
    def pages(self) -> int:
        return len(self._kids)

    def add(self, source: Path | bytes, *, name: str | None = None) -> int:
        """Append every page of ``source``; returns how many. Raises ValueError naming the source
        when it is not a readable, unencrypted PDF."""
        label = name or (str(source) if isinstance(source, Path) else "PDF data")
        try:
            reader = PdfReader(source if isinstance(source, Path) else io.BytesIO(source))
            if reader.is_encrypted:
                raise UnmergeablePdfError(f"{label} is encrypted; only unencrypted PDFs can be merged")
            # reader.pages are copies of the page objects with what they inherit from the source's
            # page tree (resources, media box, rotation) filled in: those are written, so the page
            # tree can be left behind.
            flattened: dict[tuple[int, int], PdfObject] = {}
            dests = named_destinations(reader)
            for page in reader.pages:
                if page.indirect_reference is None:
                    raise UnmergeablePdfError(f"{label} has a page that is not an indirect object")
                flattened[(page.indirect_reference.idnum, page.indirect_reference.generation)] = page
                if dests is not None:
                    resolve_named_links(page, dests)
            numbers: dict[tuple[int, int], int] = {}
            queue: list[tuple[int, PdfObject]] = []  # (new number, object), in the order numbered

            def number_of(ref: IndirectObject) -> int:
                key = (ref.idnum, ref.generation)
                if key not in numbers:
                    numbers[key] = self._reserve()
                    obj = flattened[key] if key in flattened else ref.get_object()
                    queue.append((numbers[key], NullObject() if obj is None else obj))
                return numbers[key]

            kids = [number_of(page.indirect_reference) for page in reader.pages]  # type: ignore[arg-type]
            page_numbers = set(kids)
            # Number everything the pages reach before renumbering anything: references are
            # rewritten in place on the objects pypdf parsed, which are thrown away afterwards.
            index = 0
            while index < len(queue):
                number, obj = queue[index]
                for child in references(obj, page=number in page_numbers):
                    number_of(child)
                index += 1
            renumbered: set[int] = set()
            for number, obj in queue:
                renumber(obj, numbers, renumbered)
                if number in page_numbers or (isinstance(obj, DictionaryObject) and obj.get("/Type") == "/Page"):
                    # Every page, also one only a link reaches, hangs off the merged page tree: its
                    # old parent was left behind.
                    obj[NameObject("/Parent")] = IndirectObject(PAGES, 0, None)  # type: ignore[arg-type]
                self._write(number, obj)
        except (UnmergeablePdfError, OffsetOverflowError):
            raise
        except Exception as exc:  # pypdf's own errors, and whatever else a malformed file makes it raise
            detail = str(exc) if isinstance(exc, PyPdfError) else f"{type(exc).__name__}: {exc}"
            raise UnmergeablePdfError(f"{label} is not a readable PDF ({detail})") from exc
        # Only now: a source that fails half-way leaves unreferenced objects behind, not pages, and
        # numbers it reserved but never wrote are listed as free.
        self._kids.extend(kids)
        self._added += 1
        if self._added % COLLECT_EVERY == 0:
            # A PdfReader and what it parsed are a web of reference cycles, freed only by the cyclic
            # collector: collect now and then, or dozens of finished sources wait in memory.
            gc.collect()
        return len(kids)

    def close(self) -> None:
        """Write the page tree, the catalog and the cross-reference table, a slice at a time."""
        self._offsets[PAGES - 1] = self._offset()
        self._out.write(f"{PAGES} 0 obj\n<< /Type /Pages /Count {len(self._kids)} /Kids [".encode())
        for chunk in slices(self._kids):
            self._out.write("".join(f"{number} 0 R " for number in chunk).encode())
        self._out.write(b"] >>\nendobj\n")
        self._offsets[CATALOG - 1] = self._offset()
        self._out.write(f"{CATALOG} 0 obj\n<< /Type /Catalog /Pages {PAGES} 0 R >>\nendobj\n".encode())
        xref_at = self._offset()
        size = len(self._offsets) + 1
        self._out.write(f"xref\n0 {size}\n{xref_entry(0)}".encode())  # object 0: the head of the free list
        for chunk in slices(self._offsets):
            self._out.write("".join(xref_entry(offset) for offset in chunk).encode())
        self._out.write(f"trailer\n<< /Size {size} /Root {CATALOG} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode())

    def _offset(self) -> int:
        offset = self._out.tell() - self._start
        if offset >= MAX_OFFSET:
            raise OffsetOverflowError(
                "the merged PDF would be over 10 GB, more than a PDF cross-reference table can address; "
                "merge fewer rows per file, or download the ZIP"
            )
        return offset

    def _reserve(self) -> int:
        self._offsets.append(0)
        return len(self._offsets)

    def _write(self, number: int, obj: PdfObject) -> None:
        self._offsets[number - 1] = self._offset()
        self._out.write(f"{number} 0 obj\n".encode())
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")


def slices(numbers: array[int], size: int = 4096) -> Iterable[array[int]]:
    for start in range(0, len(numbers), size):
        yield numbers[start : start + size]


def named_destinations(reader: PdfReader) -> DictionaryObject | None:
    """The source catalog's /Dests dictionary (where Chromium writes its ``#anchor`` targets), if any."""
    dests = reader.trailer["/Root"].get("/Dests")
    dests = dests.get_object() if dests is not None else None
    return dests if isinstance(dests, DictionaryObject) else None


def resolve_named_links(page: DictionaryObject, dests: DictionaryObject) -> None:
    """Point the page's links to named destinations (Chromium writes one per ``#anchor`` link) at the
    destinations themselves. Names live in the source's catalog, which is left behind, and every row
    would bring the same names; an explicit destination names its page, which is copied along."""
    for annotation in page.get("/Annots") or []:
        annotation = annotation.get_object()
        if not isinstance(annotation, DictionaryObject):
            continue
        action = annotation.get("/A")
        action = action.get_object() if action is not None else None
        for holder, key in ((annotation, "/Dest"), (action, "/D")):
            if not isinstance(holder, DictionaryObject) or key not in holder:
                continue
            target = holder[key]
            if isinstance(target, str) and target in dests:  # a name (or string) the catalog's /Dests defines
                explicit = dests[target].get_object()
                if isinstance(explicit, DictionaryObject):  # the older form: << /D [page /XYZ …] >>
                    explicit = explicit.get("/D")
                if explicit is not None:
                    holder[NameObject(key)] = explicit


def references(obj: PdfObject, *, page: bool = False) -> Iterable[IndirectObject]:
    """The indirect references inside ``obj`` (not following them), except a page's /Parent (``page``,
    or a dictionary of /Type /Page): the merged document has its own page tree."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            yield item
        elif isinstance(item, DictionaryObject):
            is_page = (page and item is obj) or item.get("/Type") == "/Page"
            stack.extend(value for key, value in item.items() if not (is_page and key == "/Parent"))
        elif isinstance(item, ArrayObject):
            stack.extend(item)


def renumber(obj: PdfObject, numbers: dict[tuple[int, int], int], renumbered: set[int]) -> None:
    """Point every indirect reference inside ``obj`` at its new number, in place.

    pypdf puts one parsed value into several pages (what they inherit), so the same reference
    object can be met twice: ``renumbered`` holds the ids of those already done.
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, DictionaryObject):
            stack.extend(item.values())
        elif isinstance(item, ArrayObject):
            stack.extend(item)
        elif isinstance(item, IndirectObject) and id(item) not in renumbered:
            renumbered.add(id(item))
            new = numbers.get((item.idnum, item.generation))
            if new is not None:
                item.idnum, item.generation = new, 0


def merge_pdfs(sources: Iterable[Path | bytes], destination: Path) -> int:
    """Concatenate PDFs in order into ``destination``; returns the page count. Written beside it and
    moved into place at the end, so a failed merge never leaves a broken file where a good one was."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.parent / f".{destination.name}.{secrets.token_hex(4)}.part"
    # Created as any output file is (0666 less the umask), not 0600 as tempfile would.
    handle = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
    try:
        with handle:
            pages = merge_into(handle, sources)
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return pages


def merge_pdfs_bytes(sources: Iterable[Path | bytes]) -> tuple[bytes, int]:
    """Concatenate PDFs in order; returns the merged document and its page count."""
    out = io.BytesIO()
    pages = merge_into(out, sources)
    return out.getvalue(), pages


def merge_into(out: BinaryIO, sources: Iterable[Path | bytes]) -> int:
    """Write the merged document of ``sources`` to ``out``; returns its page count."""
    merger = PdfMerger(out)
    for source in sources:
        merger.add(source)
    merger.close()
    return merger.pages


def page_count(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)
