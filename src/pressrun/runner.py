"""A local batch run (``pressrun render``): one template × a stream of rows → one file per row in a folder.

Each row goes through the item pipeline (pressrun.pipeline), which also decides what an error means:
a failed row is appended to ``errors.jsonl`` as it happens (sorted by row at the end) and the run goes
on; an error that stops the pipeline (Chromium cannot start, a file cannot be written: a full disk)
stops the run. Rows stream from the data file through a bounded queue into workers; memory does not
grow with the row count (only each row's output name is remembered, for uniqueness and the ZIP/merged PDF).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from playwright.async_api import Playwright

from pressrun.background import gather_or_cancel
from pressrun.data import Row, RowSource
from pressrun.errors import OutputError
from pressrun.jobs.archive import ArchiveEntry, stream_zip
from pressrun.models import ItemStatus, RenderOptions
from pressrun.naming import OutputNamer
from pressrun.pipeline import Failed, ItemPipeline, Rendered, TypedRow, failure
from pressrun.rendering import ChromiumRenderer, Renderer
from pressrun.settings import Settings
from pressrun.templating.bundle import TemplateBundle
from pressrun.templating.engines import make_isolated_engine
from pressrun.templating.isolation import IsolatedEngine
from pressrun.templating.prepared import PreparedTemplate, RowTemplate, prepare_bundle

ERRORS_FILE = "errors.jsonl"


@dataclass(frozen=True)
class RunSpec:
    bundle: TemplateBundle
    rows: RowSource  # opened without column types: the pipeline applies the template's
    out_dir: Path
    options: RenderOptions
    filename_pattern: str | None = None
    zip_path: Path | None = None
    merge_pdf_path: Path | None = None


@dataclass
class RunReport:
    total: int
    completed: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    errors_path: Path | None = None
    outputs: list[tuple[int, str]] = field(default_factory=list)  # (row number, file name) of successes
    notes: list[str] = field(default_factory=list)  # what the run did (or did not) write beyond the rows

    @property
    def rate_per_s(self) -> float:
        return (self.completed + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressCallback = Callable[[RunReport], None]


@dataclass(frozen=True)
class Prepared:
    """Everything checked before the browser starts: template compiles, data is readable. Rows
    render in ``engine``'s child processes (see pressrun.templating.isolation); run_batch closes it."""

    template: PreparedTemplate
    filename: RowTemplate | None
    total: int
    engine: IsolatedEngine


def prepare(spec: RunSpec, settings: Settings) -> Prepared:
    """Compile the template and validate/count the data. Raises TemplateError / DataError (exit 2)."""
    engine = make_isolated_engine(settings)
    try:
        template = prepare_bundle(spec.bundle, engine)
        filename = engine.compile(spec.filename_pattern, name="--filename") if spec.filename_pattern else None
        total = spec.rows.count()
    except BaseException:
        engine.close()
        raise
    engine.warm()  # the template processes start while Chromium does
    return Prepared(template, filename, total, engine)


async def run_batch(
    spec: RunSpec,
    settings: Settings,
    prepared: Prepared,
    on_progress: ProgressCallback | None = None,
    *,
    driver: Awaitable[Playwright] | None = None,
    renderer: Renderer | None = None,
) -> RunReport:
    """Render every row of ``spec`` into its output folder. ``driver``: Playwright already starting
    (the CLI starts it before its imports), else the renderer starts its own. ``renderer``: one to use
    instead of Chromium (tests: pressrun.rendering.fake). Closes the prepared engine's template
    processes, however it ends."""
    try:
        async with renderer or ChromiumRenderer(settings.render, driver=driver) as started:
            pipeline = ItemPipeline(prepared.template, spec.options, started, filename=prepared.filename)
            return await render_all(spec, pipeline, prepared.total, settings.render.concurrency, on_progress)
    finally:
        prepared.engine.close()


# What the producer hands a worker: the row, and either its typed values and file name, or its failure.
Work = tuple[Row, TypedRow | None, str | None, Failed | None]


async def render_all(spec: RunSpec, pipeline: ItemPipeline, total: int, concurrency: int,
                     on_progress: ProgressCallback | None) -> RunReport:
    errors_path = spec.out_dir / ERRORS_FILE
    with output_errors():
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        errors_path.unlink(missing_ok=True)
    report = RunReport(total=total)
    namer = OutputNamer(spec.options.format, total, reserved_names(spec))
    queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=concurrency * 4)
    started = time.perf_counter()
    errors_file: IO[str] | None = None

    def record_failure(row: Row, failed: Failed) -> None:
        nonlocal errors_file
        with output_errors(errors_path):
            if errors_file is None:
                errors_file = errors_path.open("a", encoding="utf-8")
                report.errors_path = errors_path
            entry = {"row": row.number, **failed.body()}
            if row.line is not None:  # where to look in the data file
                entry.setdefault("line", row.line)
                entry.setdefault("file", spec.rows.path.name)
            errors_file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            errors_file.flush()
        report.failed += 1

    def tick() -> None:
        report.elapsed_s = time.perf_counter() - started
        if on_progress is not None:
            on_progress(report)

    async def produce() -> None:
        # In row order: file names are assigned here, so they do not depend on which row renders first.
        for row in spec.rows:
            typed, name, failed = None, None, None
            try:
                if row.error is not None:
                    raise row.error
                typed = await pipeline.type_row(row.values)
                name = namer.assign(typed.file_name, row.number)
            except Exception as exc:
                failed = failure(exc)
            await queue.put((row, typed, name, failed))
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            row, typed, name, failed = item
            outcome = failed or await pipeline.run(row.values, typed=typed)
            if isinstance(outcome, Rendered):
                assert name is not None
                await asyncio.to_thread(write_output, spec.out_dir / name, outcome.result.data)
                report.completed += 1
                report.outputs.append((row.number, name))
            else:
                record_failure(row, outcome)
            tick()

    # More workers than pages, so templating and file writes overlap with rendering.
    workers = concurrency * 2
    try:
        tasks = [asyncio.create_task(produce()), *(asyncio.create_task(work()) for _ in range(workers))]
        # When the run cannot go on (a full disk; Chromium cannot be restarted), every worker stops
        # before the browser closes under them, so none reports it as its own failure.
        await gather_or_cancel(tasks)
    finally:
        if errors_file is not None:
            with contextlib.suppress(OSError):  # a full disk: the error being raised says so
                errors_file.close()
    if report.errors_path is not None:
        with output_errors():
            sort_errors_file(report.errors_path)
    report.outputs.sort()
    report.elapsed_s = time.perf_counter() - started
    finish_outputs(spec, report)
    return report


def reserved_names(spec: RunSpec) -> list[str]:
    """The run's own files that land in the output folder (``--merge-pdf OUT/all.pdf``): no row may take their names."""
    folder = spec.out_dir.resolve()  # resolved: out/../out/1.pdf is out/1.pdf
    return [path.name for path in (spec.zip_path, spec.merge_pdf_path) if path is not None and path.resolve().parent == folder]


@contextmanager
def output_errors(path: Path | None = None) -> Iterator[None]:
    """An OSError writing the run's files (disk full, permissions) stops the run with a clear OutputError
    naming the file: ``path`` if given (the file the user knows, not a temporary one), else the error's."""
    try:
        yield
    except OSError as exc:
        where = path or exc.filename
        raise OutputError(f"cannot write{f' {where}' if where else ''}: {exc.strerror or exc}",
                          file=str(where) if where else None) from exc


def write_output(path: Path, data: bytes) -> None:
    """Write a row's file by way of a temporary one renamed into place: a failed write (a full disk)
    or a killed process leaves no partial file to pass for a result, nor removes an earlier one."""
    partial = path.with_name(f".{path.name}.part")
    with output_errors(path):
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()


def sort_errors_file(path: Path) -> None:
    """Rewrite errors.jsonl in row order. It is appended to as rows fail, in the order they finish, so a
    crash loses nothing; sorted at the end, it reads like the data file."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.sort(key=lambda line: json.loads(line)["row"])
    partial = path.with_name(f".{path.name}.part")
    try:
        partial.write_text("".join(lines), encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def finish_outputs(spec: RunSpec, report: RunReport) -> None:
    """Write the optional ZIP and merged PDF, in row order."""
    with output_errors():
        if spec.zip_path is not None:
            write_zip(spec.zip_path, archive_entries(spec, report), report.errors_path)
        if spec.merge_pdf_path is not None:
            merge_outputs(spec.merge_pdf_path, [spec.out_dir / name for _, name in report.outputs], report)


def archive_entries(spec: RunSpec, report: RunReport) -> Iterator[ArchiveEntry]:
    """Every row in row order, for the archive's manifest: its file, or its error (read back from the
    sorted errors.jsonl, so memory stays flat). ``index`` is the row number, as in errors.jsonl."""
    completed = ((number, name, None) for number, name in report.outputs)
    failed: Iterator[tuple[int, None, dict]] = iter(())
    if report.errors_path is not None:
        failed = ((entry["row"], None, entry) for entry in map(json.loads, read_lines(report.errors_path)))
    for number, name, error in heapq.merge(completed, failed, key=lambda row: row[0]):
        yield ArchiveEntry(
            index=number, status=ItemStatus.COMPLETED if error is None else ItemStatus.FAILED, name=name,
            path=spec.out_dir / name if name is not None else None,
            error_code=error["code"] if error else None, error_message=error["message"] if error else None,
        )


def read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as lines:
        yield from lines


def merge_outputs(merge_pdf_path: Path, files: list[Path], report: RunReport) -> None:
    if not files:  # a PDF needs at least one page: none when every row failed
        note = f"no merged PDF: every row failed, so {merge_pdf_path} was not written"
        if merge_pdf_path.exists():
            # A file there now would pass for this run's result.
            merge_pdf_path.unlink()
            note += " (the file of an earlier run was removed)"
        report.notes.append(note)
        return
    from pressrun.rendering.pdf import merge_pdfs  # pypdf: imported only by runs that merge

    merge_pdfs(files, merge_pdf_path)


def write_zip(zip_path: Path, entries: Iterator[ArchiveEntry], errors_path: Path | None) -> None:
    """The API's archive (pressrun.jobs.archive: the files and a manifest.csv), plus errors.jsonl when
    rows failed; written to a temporary name and renamed into place."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(f".{zip_path.name}.part")
    extras = [(ERRORS_FILE, errors_path)] if errors_path is not None else []
    try:
        with partial.open("wb") as archive:
            for chunk in stream_zip(entries, extras=extras):
                archive.write(chunk)
        os.replace(partial, zip_path)
    finally:
        partial.unlink(missing_ok=True)
