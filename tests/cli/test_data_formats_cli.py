"""The same rows as JSON, JSONL and XLSX (dotted headers for nesting) render the same documents,
and nested values are reachable as ``{{ user.name }}``."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from tests.cli.cli_support import make_template, output_names, pdf_pages_text, render

pytestmark = pytest.mark.chromium

NESTED_HTML = '<p style="font:14px sans-serif">#{{ n }} {{ user.name }} of {{ user.city }}</p>\n'
ROWS = [
    {"n": 1, "user": {"name": "Ada", "city": "London"}},
    {"n": 2, "user": {"name": "Grace", "city": "Arlington"}},
    {"n": 3, "user": {"name": "Katherine", "city": "Hampton"}},
]
EXPECTED = ["#1 Ada of London", "#2 Grace of Arlington", "#3 Katherine of Hampton"]


def write_json(path: Path) -> Path:
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    return path


def write_jsonl(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n\n", encoding="utf-8")  # a trailing blank line
    return path


def write_xlsx(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["n", "user.name", "user.city"])  # dotted headers become nested values
    for row in ROWS:
        sheet.append([row["n"], row["user"]["name"], row["user"]["city"]])
    workbook.save(path)
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("nested") / "tpl", NESTED_HTML)


@pytest.mark.parametrize(("file_name", "write"), [
    ("rows.json", write_json),
    ("rows.jsonl", write_jsonl),
    ("rows.xlsx", write_xlsx),
])
def test_data_formats_render_the_same_rows(template, tmp_path, file_name, write):
    data = write(tmp_path / file_name)
    out = tmp_path / "out"
    merged = tmp_path / "all.pdf"
    run = render(template, data, out, "--format", "pdf", "--merge-pdf", merged)

    assert run.exit_code == 0, run
    assert "3 rendered, 0 failed" in run.stdout
    assert output_names(out) == ["1.pdf", "2.pdf", "3.pdf"]
    assert pdf_pages_text(merged) == EXPECTED

