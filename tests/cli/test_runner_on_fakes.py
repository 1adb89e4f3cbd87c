"""A local run (pressrun.runner) on the fake renderer: the pipeline's error policy from the CLI's side,
without Chromium. tests/cli/test_render_cli.py and test_row_failures_cli.py run the real command."""

from __future__ import annotations

import csv
import errno
import io
import json
import zipfile
from pathlib import Path

import pytest

from pressrun.data import open_rows
from pressrun.errors import BrowserUnavailableError, OutputError
from pressrun.models import RenderOptions
from pressrun.rendering.fake import FakeRenderer
from pressrun.runner import ERRORS_FILE, RunSpec, prepare, run_batch
from pressrun.settings import Settings
from pressrun.templating.bundle import load_template

MANIFEST = 'width = 40\nheight = 20\n[columns]\nprice = "number"\n'
HTML = "<p data-fake-error='{{ error }}'>{{ price * 2 }}</p>"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "template.html").write_text(HTML)
    (folder / "pressrun.toml").write_text(MANIFEST)
    return folder


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as out:
        csv.writer(out).writerows([["price", "error"], *rows])
    return path


async def run(template: Path, data: Path, out: Path, renderer: FakeRenderer, **spec: object):
    settings = Settings.load(**{"render.concurrency": 2})
    run_spec = RunSpec(load_template(template), open_rows(data), out, RenderOptions(width_px=40, height_px=20), **spec)
    return await run_batch(run_spec, settings, prepare(run_spec, settings), renderer=renderer)


async def test_failed_rows_are_listed_with_row_line_and_details_and_the_run_goes_on(template, tmp_path):
    data = write_csv(tmp_path / "rows.csv", [["1", ""], ["abc", ""], ["3", "render_timeout"], ["4", ""]])
    out = tmp_path / "out"
    report = await run(template, data, out, FakeRenderer(concurrency=2), zip_path=out / "all.zip")

    assert (report.completed, report.failed) == (2, 2)
    errors = [json.loads(line) for line in (out / ERRORS_FILE).read_text().splitlines()]
    assert [(e["row"], e["line"], e["code"]) for e in errors] == [(2, 3, "invalid_value"), (3, 4, "render_timeout")]
    assert errors[0]["column"] == "price" and errors[0]["value"] == "abc"
    with zipfile.ZipFile(out / "all.zip") as archive:
        manifest = list(csv.reader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [row[:4] for row in manifest[1:]] == [["1", "1.png", "completed", ""], ["2", "", "failed", "invalid_value"],
                                                 ["3", "", "failed", "render_timeout"], ["4", "4.png", "completed", ""]]


async def test_chromium_gone_stops_the_run_instead_of_failing_every_row(template, tmp_path):
    data = write_csv(tmp_path / "rows.csv", [[str(i), ""] for i in range(20)])
    renderer = FakeRenderer(concurrency=2)
    render = renderer.render

    async def lost_after_three(*args: object, **kwargs: object):
        renderer.unavailable = len(renderer.calls) >= 3  # Chromium dies mid-run
        return await render(*args, **kwargs)

    renderer.render = lost_after_three  # type: ignore[method-assign]
    with pytest.raises(BrowserUnavailableError):
        await run(template, data, tmp_path / "out", renderer)
    # The run stopped: no row started after those already in flight (the runner has 2 workers a page).
    assert len(renderer.calls) <= 3 + 2 * renderer.concurrency < 20
    assert not (tmp_path / "out" / ERRORS_FILE).exists()  # no row is blamed for it


async def test_an_output_that_cannot_be_written_stops_the_run_naming_the_file(template, tmp_path, monkeypatch):
    data = write_csv(tmp_path / "rows.csv", [[str(i), ""] for i in range(20)])
    out = tmp_path / "out"

    def full(path: Path, data: bytes) -> None:
        raise OutputError(f"cannot write {path}: {errno.errorcode[errno.ENOSPC]}", file=str(path))

    monkeypatch.setattr("pressrun.runner.write_output", full)
    with pytest.raises(OutputError) as caught:
        await run(template, data, out, FakeRenderer(concurrency=2))
    assert str(out) in caught.value.message
    assert not (out / ERRORS_FILE).exists()


async def test_template_processes_that_cannot_start_stop_the_run(template, tmp_path, monkeypatch):
    """Found in review: the engine's own failures were plain PressrunErrors, so a machine that could not
    fork failed every row as internal_error and went on to the last one."""
    from pressrun.errors import TemplateEngineUnavailableError
    from pressrun.templating.isolation import ProcessPool

    def cannot_fork(self):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(ProcessPool, "_spawn", cannot_fork)
    monkeypatch.setattr(ProcessPool, "warm", lambda self: None)
    data = write_csv(tmp_path / "rows.csv", [[str(i), ""] for i in range(50)])
    renderer = FakeRenderer(concurrency=2)
    with pytest.raises(TemplateEngineUnavailableError, match="could not start a template process"):
        await run(template, data, tmp_path / "out", renderer)
    assert renderer.calls == [] and not (tmp_path / "out" / ERRORS_FILE).exists()


async def test_failed_rows_name_the_data_file(template, tmp_path):
    data = write_csv(tmp_path / "prices.csv", [["abc", ""]])
    await run(template, data, tmp_path / "out", FakeRenderer(concurrency=2))
    [error] = [json.loads(line) for line in (tmp_path / "out" / ERRORS_FILE).read_text().splitlines()]
    assert (error["row"], error["line"], error["file"], error["code"]) == (1, 2, "prices.csv", "invalid_value")
