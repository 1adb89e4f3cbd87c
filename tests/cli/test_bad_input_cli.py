"""Runs that cannot start exit 2 with one clear message on stderr, before Chromium is launched and
before anything is written. Table-driven: every case is started at once (they need no browser, only
Python start-up), then each is checked as its own test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.cli.cli_support import SPLIT_HTML, PendingRun, make_template, render_args, start_cli

GOOD_CSV = "id,name,color\n1,Alpha,#ff0000\n2,Bravo,#00ff00\n"


@dataclass(frozen=True)
class Case:
    expected: tuple[str, ...]  # fragments of stderr
    data: tuple[str, str] = ("rows.csv", GOOD_CSV)  # file name, content
    template_html: str | None = SPLIT_HTML  # None: the template folder does not exist
    manifest: str = 'width = 200\nheight = 100\n'
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "unterminated_quote": Case(
        ("error: broken.csv line 3:", "closing quote"),
        data=("broken.csv", 'id,name,color\n1,Alpha,red\n2,"Bravo,blue\n3,Charlie,green\n'),
    ),
    "empty_file": Case(("error: empty.csv is empty",), data=("empty.csv", "")),
    "header_only": Case(("error: empty.csv has a header but no data rows",), data=("empty.csv", "id,name,color\n")),
    "empty_json_array": Case(("error: rows.json has no rows",), data=("rows.json", "[]")),
    "template_syntax_error": Case(("error: template.html line 2:", "'}'"), template_html="<p>\n  {{ name }\n</p>\n"),
    "unknown_format": Case(
        ("--format", "'gif' is not one of", "'png'", "'jpeg'", "'jpg'", "'webp'", "'pdf'"), args=("--format", "gif")
    ),
    "quality_out_of_range": Case(("--quality", "150", "1<=x<=100"), args=("--format", "jpeg", "--quality", "150")),
    "missing_template": Case(("TEMPLATE", "does not exist"), template_html=None),
    "merge_pdf_needs_pdf": Case(
        ("error: --merge-pdf needs PDF output, but the format is png", "--format pdf"), args=("--merge-pdf", "{tmp}/all.pdf")
    ),
    "bad_manifest_value": Case(("error: pressrun.toml: width = 'wide' is not valid", "integer"), manifest='width = "wide"\n'),
    "unknown_column_type": Case(
        ("error: pressrun.toml: columns.name = 'money' is not valid", "string, number, integer"),
        manifest='[columns]\nname = "money"\n',
    ),
    "unknown_manifest_locale": Case(("error: pressrun.toml: locale = 'xx_YY'",), manifest='locale = "xx_YY"\n'),
    "unknown_pdf_key": Case(
        ("error: pressrun.toml: pdf.pagesize", "page_size, landscape, margin_mm"), manifest='[pdf]\npagesize = "a4"\n'
    ),
    "out_inside_a_file": Case(
        ("error: -o/--out", "rows.csv/sub:", "rows.csv is a file, so no folder can be created inside it"),
        args=("-o", "{tmp}/rows.csv/sub"),
    ),
    "zip_inside_a_file": Case(("error: --zip", "rows.csv/x.zip:", "is a file"), args=("--zip", "{tmp}/rows.csv/x.zip")),
    "merge_pdf_unwritable": Case(
        ("error: --merge-pdf /proc/all.pdf: cannot create files in /proc",),
        args=("--format", "pdf", "--merge-pdf", "/proc/all.pdf"),
    ),
    "zip_and_merge_pdf_same_file": Case(
        ("error: --zip and --merge-pdf are the same file",),
        args=("--format", "pdf", "--zip", "{tmp}/all.pdf", "--merge-pdf", "{tmp}/all.pdf"),
    ),
    "webp_too_large": Case(
        ("error: width: 4096 px × scale 4 = 16384 px", "WebP", "16383 px"),
        args=("--format", "webp", "--width", "4096", "--height", "10", "--scale", "4"),
    ),
    "unknown_locale": Case(("error:", "'xx_YY'", "locale"), args=("--locale", "xx_YY")),
    "bad_setting_in_env": Case(("error:", "PRESSRUN_RENDER__TIMEOUT_S", "'soon'"), env={"PRESSRUN_RENDER__TIMEOUT_S": "soon"}),
    "unknown_data_extension": Case(
        ("error: rows.txt: unknown data file type '.txt'", ".csv", ".json", ".jsonl", ".xlsx"), data=("rows.txt", "id\n1\n")
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[PendingRun, Path]]]:
    started: dict[str, tuple[PendingRun, Path]] = {}
    try:
        for name, case in CASES.items():
            folder = tmp_path_factory.mktemp(name)
            template = folder / "tpl"
            if case.template_html is not None:
                make_template(template, case.template_html, case.manifest)
            data = folder / case.data[0]
            data.write_text(case.data[1], encoding="utf-8")
            args = [a.replace("{tmp}", str(folder)) for a in case.args]
            started[name] = (start_cli(*render_args(template, data, folder / "out", *args), env=case.env), folder)
        yield started
    finally:
        for pending, _ in started.values():
            pending.kill()


@pytest.mark.parametrize("name", CASES)
def test_unusable_run_exits_2_with_a_clear_message(runs, name):
    pending, folder = runs[name]
    run = pending.result()

    assert run.exit_code == 2, run
    assert "Traceback" not in run.stderr, run
    assert run.stdout == "", run
    for fragment in CASES[name].expected:
        assert fragment in run.stderr, run
    assert sorted(p.name for p in folder.iterdir() if p.name not in ("tpl", CASES[name].data[0])) == [], (
        "nothing is written (no out folder, no merged PDF) when the run cannot start"
    )
