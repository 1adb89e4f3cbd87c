import csv, json
from pathlib import Path
import pytest
from pressrun.data import open_rows
from pressrun.models import RenderOptions
from pressrun.rendering.fake import FakeRenderer
from pressrun.runner import ERRORS_FILE, RunSpec, prepare, run_batch
from pressrun.settings import Settings
from pressrun.templating.bundle import load_template
from pressrun.templating.isolation import ProcessPool
from pressrun.errors import PressrunError


@pytest.fixture
def template(tmp_path):
    folder = tmp_path / "tpl"; folder.mkdir()
    (folder / "template.html").write_text("<p>{{ price }}</p>")
    (folder / "pressrun.toml").write_text('width = 40\nheight = 20\n')
    return folder


async def test_template_processes_cannot_start_stops_the_run(template, tmp_path, monkeypatch):
    data = tmp_path / "rows.csv"
    with data.open("w", newline="") as out:
        csv.writer(out).writerows([["price"], *[[str(i)] for i in range(50)]])
    def no_fork(self):
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(ProcessPool, "_spawn", no_fork); monkeypatch.setattr(ProcessPool, "warm", lambda self: None)
    settings = Settings.load(**{"render.concurrency": 2})
    out = tmp_path / "out"
    spec = RunSpec(load_template(template), open_rows(data), out, RenderOptions(width_px=40, height_px=20))
    prepared = prepare(spec, settings)
    # Before the redesign: `except PressrunError: raise` -> the run stops (exit 2).
    try:
        report = await run_batch(spec, settings, prepared, renderer=FakeRenderer(concurrency=2))
    except PressrunError:
        return
    print("completed", report.completed, "failed", report.failed)
    print((out / ERRORS_FILE).read_text().splitlines()[:2])
    pytest.fail("the run went on: every row failed")
