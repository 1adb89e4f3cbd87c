"""`pressrun render` end to end through the console script: output files, formats, ZIP and merged PDF,
safe file names, and a bad row that fails alone."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader
from tests.cli.cli_support import (
    BLUE,
    SPLIT_HTML,
    WHITE,
    close_to,
    hex_rgb,
    make_template,
    output_names,
    pdf_pages_text,
    pixel,
    read_errors,
    render,
    write_csv,
)
from tests.conftest import open_image

pytestmark = pytest.mark.chromium

ROWS = [  # id, name, color
    ["1", "Alpha", "#ff0000"],
    ["2", "Bravo", "#00ff00"],
    ["3", "Charlie", "#ffff00"],
    ["4", "Delta", "#ff00ff"],
    ["5", "Echo", "#00ffff"],
]
COLOURS = [colour for _, _, colour in ROWS]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render_cli")


@pytest.fixture(scope="module")
def template(workdir: Path) -> Path:
    return make_template(workdir / "split", SPLIT_HTML)


@pytest.fixture(scope="module")
def rows_csv(workdir: Path) -> Path:
    return write_csv(workdir / "rows.csv", ["id", "name", "color"], ROWS)


# --- 1. happy path -------------------------------------------------------------------------------


def test_png_rows_become_numbered_files_of_the_exact_size(template, rows_csv, tmp_path):
    out = tmp_path / "out"
    run = render(template, rows_csv, out, "--scale", "2")

    assert run.exit_code == 0, run
    assert "5 rendered, 0 failed" in run.stdout, run
    assert "Traceback" not in run.stderr, run
    # OutputNamer pads to the digits of the row count: 5 rows -> one digit.
    assert output_names(out) == ["1.png", "2.png", "3.png", "4.png", "5.png"]
    assert not (out / "errors.jsonl").exists()
    for number, colour in enumerate(COLOURS, 1):
        path = out / f"{number}.png"
        image = open_image(path.read_bytes())
        assert image.format == "PNG"
        assert image.size == (400, 200), "200×100 CSS px at --scale 2"
        assert close_to(pixel(path, (100, 100)), hex_rgb(colour)), f"row {number}'s colour in its own file"
        assert close_to(pixel(path, (390, 190)), BLUE)


# --- 2. formats, merged PDF, ZIP -----------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extension", "pil_format", "magic"), [
    ("jpeg", ".jpg", "JPEG", b"\xff\xd8\xff"),
    ("webp", ".webp", "WEBP", b"RIFF"),
])
def test_image_formats(template, rows_csv, tmp_path, fmt, extension, pil_format, magic):
    out = tmp_path / "out"
    run = render(template, rows_csv, out, "--format", fmt, "--quality", "95")

    assert run.exit_code == 0, run
    assert output_names(out) == [f"{n}{extension}" for n in range(1, 6)]
    for number, colour in enumerate(COLOURS, 1):
        path = out / f"{number}{extension}"
        assert path.read_bytes().startswith(magic)
        image = open_image(path.read_bytes())
        assert image.format == pil_format
        assert image.size == (200, 100), "the manifest's size at the default scale 1"
        assert close_to(pixel(path, (50, 50)), hex_rgb(colour), tolerance=24)


@pytest.fixture(scope="module")
def pdf_run(template, rows_csv, workdir):
    out = workdir / "pdf-out"
    run = render(template, rows_csv, out, "--format", "pdf", "--merge-pdf", workdir / "merged.pdf",
                 "--zip", workdir / "pdfs.zip")
    return run, out, workdir / "merged.pdf", workdir / "pdfs.zip"


def test_pdf_format_writes_one_single_page_pdf_per_row(pdf_run):
    run, out, _, _ = pdf_run
    assert run.exit_code == 0, run
    assert output_names(out) == [f"{n}.pdf" for n in range(1, 6)]
    for number, (_, name, _) in enumerate(ROWS, 1):
        reader = PdfReader(out / f"{number}.pdf")
        assert len(reader.pages) == 1
        box = reader.pages[0].mediabox
        # No page_size in the manifest: the page is 200×100 CSS px at 96 px/in = 150×75 pt.
        assert float(box.width) == pytest.approx(150, abs=1) and float(box.height) == pytest.approx(75, abs=1)
        assert f"row-{number} {name}" in pdf_pages_text(out / f"{number}.pdf")[0]


def test_merge_pdf_has_every_row_as_a_page_in_row_order(pdf_run):
    run, _, merged, _ = pdf_run
    assert run.exit_code == 0, run
    pages = pdf_pages_text(merged)
    assert len(pages) == 5
    for page, (number, name, _) in zip(pages, ROWS, strict=True):
        assert f"row-{number} {name}" in page


def test_zip_holds_every_output_file(pdf_run):
    run, out, _, zip_path = pdf_run
    assert run.exit_code == 0, run
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted([*output_names(out), "manifest.csv"])
        for name in output_names(out):
            assert archive.read(name) == (out / name).read_bytes()
        manifest = list(csv.reader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [row[1:3] for row in manifest[1:]] == [[name, "completed"] for name in output_names(out)]


# --- 3. --filename -------------------------------------------------------------------------------

FILENAME_ROWS = [  # id, name, colour -> expected file name
    ("1", "a/b", "#ff0000", "1-a-b.png"),
    ("..", "..", "#00ff00", "2.png"),  # nothing usable left: falls back to the row number
    ("CON", "", "#ffff00", "_CON.png"),  # "CON-" -> "CON", reserved on Windows
    ("4", "dup", "#ff00ff", "4-dup.png"),
    ("4", "dup", "#00ffff", "4-dup-2.png"),
    ("5", "Case", "#800000", "5-Case.png"),
    ("5", "CASE", "#008000", "5-CASE-2.png"),  # case-only duplicate: distinct on case-insensitive disks too
    ("..", "/etc/passwd", "#808000", "etc-passwd.png"),
    ("6", "Tom & Jerry's <best>", "#800080", "6-Tom & Jerry's -best.png"),  # the row's text, not HTML entities
]


def test_filename_pattern_gives_safe_unique_names(template, tmp_path):
    data = write_csv(tmp_path / "names.csv", ["id", "name", "color"], [list(r[:3]) for r in FILENAME_ROWS])
    out = tmp_path / "out"
    run = render(template, data, out, "--filename", "{{ id }}-{{ name }}")

    assert run.exit_code == 0, run
    assert f"{len(FILENAME_ROWS)} rendered, 0 failed" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(r[3] for r in FILENAME_ROWS)
    assert all(p.is_file() for p in out.iterdir()), "no sub-folders from '/' in a name"
    assert not (tmp_path / "etc").exists()
    for _, _, colour, name in FILENAME_ROWS:
        assert close_to(pixel(out / name, (50, 50)), hex_rgb(colour)), f"{name} holds its own row, not a later one"


# --- 4. one bad row ------------------------------------------------------------------------------

MISSING_ROWS = [list(r) for r in ROWS]
MISSING_ROWS[2] = ["3", "Charlie"]  # no colour cell: the key is absent from the row


@pytest.fixture(scope="module")
def missing_csv(workdir: Path) -> Path:
    return write_csv(workdir / "missing.csv", ["id", "name", "color"], MISSING_ROWS)


def test_a_row_missing_a_variable_fails_alone_in_strict_mode(template, missing_csv, tmp_path):
    out = tmp_path / "out"
    zip_path = tmp_path / "all.zip"
    run = render(template, missing_csv, out, "--zip", zip_path)

    assert run.exit_code == 1, run
    assert "4 rendered, 1 failed" in run.stdout
    assert "errors.jsonl" in run.stdout
    errors = read_errors(out)
    assert len(errors) == 1
    assert errors[0]["row"] == 3
    assert errors[0]["code"] == "missing_variable"
    assert errors[0]["variable"] == "color"
    assert "'color'" in errors[0]["message"]
    assert output_names(out) == ["1.png", "2.png", "4.png", "5.png"]
    for number in (1, 2, 4, 5):
        assert close_to(pixel(out / f"{number}.png", (50, 50)), hex_rgb(COLOURS[number - 1]))
    with zipfile.ZipFile(zip_path) as archive:
        # The API's archive (the files and a manifest.csv line per row), plus the run's errors.jsonl.
        assert sorted(archive.namelist()) == ["1.png", "2.png", "4.png", "5.png", "errors.jsonl", "manifest.csv"]
        assert archive.read("errors.jsonl") == (out / "errors.jsonl").read_bytes()
        assert archive.read("1.png") == (out / "1.png").read_bytes()
        manifest = list(csv.reader(io.StringIO(archive.read("manifest.csv").decode())))
    assert manifest[0] == ["index", "file", "status", "error_code", "error_message"]
    assert [row[:4] for row in manifest[1:]] == [
        ["1", "1.png", "completed", ""], ["2", "2.png", "completed", ""], ["3", "", "failed", "missing_variable"],
        ["4", "4.png", "completed", ""], ["5", "5.png", "completed", ""]]
    assert "'color'" in manifest[3][4]


def test_no_strict_renders_the_missing_variable_empty(template, missing_csv, tmp_path):
    out = tmp_path / "out"
    run = render(template, missing_csv, out, "--no-strict")

    assert run.exit_code == 0, run
    assert "5 rendered, 0 failed" in run.stdout
    assert not (out / "errors.jsonl").exists()
    assert output_names(out) == [f"{n}.png" for n in range(1, 6)]
    assert close_to(pixel(out / "3.png", (50, 50)), WHITE), "no background colour: the page shows through"
    assert close_to(pixel(out / "3.png", (190, 90)), BLUE)


# --- 5. the merged PDF and the page size -----------------------------------------------------------

A4_PDF_MANIFEST = 'name = "a4"\nwidth = 200\nheight = 100\nformat = "pdf"\n[pdf]\npage_size = "a4"\n'


def test_merge_pdf_inside_out_takes_no_rows_name_and_cli_size_overrides_the_page_size(workdir, rows_csv, tmp_path):
    a4 = make_template(workdir / "a4", SPLIT_HTML, A4_PDF_MANIFEST)
    out = tmp_path / "out"
    # No --format: the manifest's format = "pdf" is enough for --merge-pdf.
    run = render(a4, rows_csv, out, "--merge-pdf", out / "1.pdf", "--width", "300", "--height", "200")

    assert run.exit_code == 0, run
    assert output_names(out) == ["1-2.pdf", "1.pdf", "2.pdf", "3.pdf", "4.pdf", "5.pdf"]
    assert len(pdf_pages_text(out / "1.pdf")) == 5, "1.pdf is the merged file"
    assert "row-1 Alpha" in pdf_pages_text(out / "1-2.pdf")[0], "row 1 moved aside, not overwritten"
    box = PdfReader(out / "2.pdf").pages[0].mediabox
    # --width 300 --height 200 CSS px at 96 px/in = 225×150 pt, not the manifest's A4.
    assert float(box.width) == pytest.approx(225, abs=1) and float(box.height) == pytest.approx(150, abs=1)


def test_merge_pdf_when_every_row_fails_says_so_and_removes_an_old_merged_file(template, tmp_path):
    data = write_csv(tmp_path / "rows.csv", ["id", "name"], [["1", "Alpha"], ["2", "Bravo"]])  # no colour
    merged = tmp_path / "all.pdf"
    merged.write_bytes(b"%PDF- an earlier run's result")
    run = render(template, data, tmp_path / "out", "--format", "pdf", "--merge-pdf", merged)

    assert run.exit_code == 1, run
    assert f"no merged PDF: every row failed, so {merged} was not written" in run.stderr, run
    assert "earlier run was removed" in run.stderr
    assert not merged.exists()
