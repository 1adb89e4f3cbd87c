"""PDF post-processing with pypdf: merging per-row PDFs, counting pages."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from pypdf import PdfReader, PdfWriter


def _writer(sources: Iterable[Path | bytes]) -> PdfWriter:
    writer = PdfWriter()
    for source in sources:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        writer.append(stream)
    return writer


def merge_pdfs(sources: Iterable[Path | bytes], destination: Path) -> int:
    """Concatenate PDFs in order into ``destination``; returns the page count."""
    writer = _writer(sources)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("wb") as handle:
        writer.write(handle)
    return len(writer.pages)


def merge_pdfs_bytes(sources: Iterable[Path | bytes]) -> tuple[bytes, int]:
    """Concatenate PDFs in order; returns the merged document and its page count."""
    writer = _writer(sources)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)


def page_count(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)
