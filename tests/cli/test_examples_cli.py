"""The bundled examples render completely with their own data, as `make examples` does."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from tests.cli.cli_support import (
    EXAMPLES,
    PendingRun,
    output_names,
    pdf_pages_text,
    pdf_text,
    render_args,
    start_cli,
)
from tests.conftest import open_image

pytestmark = pytest.mark.chromium

A4_LANDSCAPE_PT = (841.89, 595.28)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[PendingRun, Path]]]:
    """Start all three examples at once; each test waits for its own. Together they take about as
    long as the slowest one alone."""
    root = tmp_path_factory.mktemp("examples")
    started = {
        "social-card": start_cli(*render_args(EXAMPLES / "social-card", EXAMPLES / "social-card" / "data.csv",
                                              root / "social-card")),
        "certificate": start_cli(*render_args(EXAMPLES / "certificate", EXAMPLES / "certificate" / "data.csv",
                                              root / "certificate", "--merge-pdf", root / "certificates.pdf")),
        "invoice": start_cli(*render_args(EXAMPLES / "invoice", EXAMPLES / "invoice" / "data.json", root / "invoice")),
    }
    try:
        yield {name: (pending, root) for name, pending in started.items()}
    finally:
        for pending in started.values():
            pending.kill()


def csv_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def numbered(count: int, extension: str) -> list[str]:
    width = len(str(count))
    return [f"{n:0{width}d}.{extension}" for n in range(1, count + 1)]


def test_social_card(runs):
    rows = csv_rows(EXAMPLES / "social-card" / "data.csv")
    pending, root = runs["social-card"]
    run, out = pending.result(), root / "social-card"

    assert run.exit_code == 0, run
    assert f"{len(rows)} rendered, 0 failed" in run.stdout
    assert output_names(out) == numbered(len(rows), "png"), "names padded to the row count's digits"
    for path in out.iterdir():
        image = open_image(path.read_bytes())
        assert (image.format, image.size) == ("PNG", (1200, 630)), path.name


def test_certificate_is_a4_landscape_and_merges_in_row_order(runs):
    rows = csv_rows(EXAMPLES / "certificate" / "data.csv")
    pending, root = runs["certificate"]
    run, out, merged = pending.result(), root / "certificate", root / "certificates.pdf"

    assert run.exit_code == 0, run
    assert f"{len(rows)} rendered, 0 failed" in run.stdout
    names = numbered(len(rows), "pdf")
    assert output_names(out) == names
    for name in names:
        pages = PdfReader(out / name).pages
        assert len(pages) == 1, f"{name} spills onto a second page"
        box = pages[0].mediabox
        assert (float(box.width), float(box.height)) == pytest.approx(A4_LANDSCAPE_PT, abs=1), name
    merged_pages = pdf_pages_text(merged)
    assert len(merged_pages) == len(rows)
    for page, row in zip(merged_pages, rows, strict=True):
        assert row["certificate_id"] in page


def test_invoice_pdfs_carry_their_own_invoice_number(runs):
    rows = json.loads((EXAMPLES / "invoice" / "data.json").read_text(encoding="utf-8"))
    pending, root = runs["invoice"]
    run, out = pending.result(), root / "invoice"

    assert run.exit_code == 0, run
    assert f"{len(rows)} rendered, 0 failed" in run.stdout
    names = numbered(len(rows), "pdf")
    assert output_names(out) == names
    numbers = [row["number"] for row in rows]
    for name, number in zip(names, numbers, strict=True):
        text = pdf_text(out / name)
        assert number in text, name
        assert not any(other in text for other in numbers if other != number), f"{name} shows another row's number"
