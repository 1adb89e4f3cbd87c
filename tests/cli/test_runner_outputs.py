"""The batch runner's checks on what it writes, without a browser."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest
from pypdf import PdfWriter

from pressrun.errors import EmptyOutputError, OutputError, error_body
from pressrun.models import OutputFormat, RenderResult
from pressrun.rendering.pdf import merge_pdfs
from pressrun.rendering.pool import check_not_empty
from pressrun.runner import (
    RunReport,
    RunSpec,
    merge_outputs,
    reserved_names,
    sort_errors_file,
    write_output,
)


def test_an_empty_capture_fails_its_row_with_a_clear_message():
    with pytest.raises(EmptyOutputError) as caught:
        check_not_empty(RenderResult(b"", OutputFormat.WEBP, 16384, 40))
    body = error_body(caught.value)
    assert body["code"] == "empty_output"
    assert "empty webp" in body["message"] and "16384×40" in body["message"]


def test_a_capture_with_data_passes():
    check_not_empty(RenderResult(b"RIFF", OutputFormat.WEBP, 10, 10))


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_merged_pdf_gets_the_permissions_of_any_output_file(tmp_path):
    old = os.umask(0o022)
    try:
        merge_pdfs([blank_pdf()], tmp_path / "all.pdf")
        (tmp_path / "row.pdf").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "all.pdf").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "row.pdf").stat().st_mode) == 0o644


def test_errors_file_is_rewritten_in_row_order(tmp_path):
    path = tmp_path / "errors.jsonl"
    rows = [4, 3, 8, 2, 10]
    path.write_text("".join(json.dumps({"row": n, "code": "x", "message": f"m{n}"}) + "\n" for n in rows))
    sort_errors_file(path)
    assert [json.loads(line)["row"] for line in path.read_text().splitlines()] == [2, 3, 4, 8, 10]
    assert [p.name for p in tmp_path.iterdir()] == ["errors.jsonl"]


def test_merge_and_zip_names_inside_the_output_folder_are_reserved(tmp_path):
    spec = RunSpec(None, None, tmp_path / "out", None, None, tmp_path / "out" / "pack.zip",  # type: ignore[arg-type]
                   tmp_path / "out" / "1.pdf")
    assert reserved_names(spec) == ["pack.zip", "1.pdf"]
    elsewhere = RunSpec(None, None, tmp_path / "out", None, None, tmp_path / "pack.zip", None)  # type: ignore[arg-type]
    assert reserved_names(elsewhere) == []
    roundabout = RunSpec(None, None, tmp_path / "out", None, None, None,  # type: ignore[arg-type]
                         tmp_path / "out" / ".." / "out" / "1.pdf")
    assert reserved_names(roundabout) == ["1.pdf"]


def test_no_merged_pdf_when_every_row_failed_and_an_old_one_is_removed(tmp_path):
    stale = tmp_path / "all.pdf"
    stale.write_bytes(blank_pdf())
    report = RunReport(total=2, failed=2)
    merge_outputs(stale, [], report)
    assert not stale.exists()
    assert report.notes == [f"no merged PDF: every row failed, so {stale} was not written (the file of an earlier run was removed)"]


def test_an_output_that_cannot_be_written_stops_the_run_with_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputError) as caught:
        write_output(tmp_path / "afile" / "1.png", b"x")
    assert caught.value.message == f"cannot write {tmp_path / 'afile' / '1.png'}: Not a directory"


def test_a_file_the_disk_filled_up_half_way_is_not_left_behind(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "7.png"

    def half_then_full(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(target), "write_bytes", half_then_full)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        write_output(target, b"x" * 1000)
    assert not target.exists(), "a truncated file would pass for a rendered row"
