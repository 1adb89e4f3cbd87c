"""The ``pressrun`` command line: render, preview, variables, settings, serve, keys.

Exit codes: 0 every row rendered; 1 some rows failed (listed in OUTDIR/errors.jsonl); 2 usage errors,
unusable templates or data files, or no usable Chromium; 130 interrupted.

Start-up is part of every run, so this module imports little: ``render`` and ``preview`` start
Playwright's driver first (pressrun.driver) and import the rest of pressrun while it boots.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import gc
import importlib
import json
import logging
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pressrun import __version__
from pressrun.errors import PressrunError, RowError
from pressrun.models import OutputFormat, RenderOptions

if TYPE_CHECKING:
    from playwright.async_api import Playwright

    from pressrun.driver import PrestartedDriver
    from pressrun.models import RenderResult
    from pressrun.runner import RunReport
    from pressrun.settings import Settings
    from pressrun.templating.bundle import TemplateBundle
    from pressrun.templating.prepared import PreparedTemplate

FORMAT_CHOICES = ["png", "jpeg", "jpg", "webp", "pdf"]
ERRORS_NAME = "errors.jsonl"  # pressrun.runner.ERRORS_FILE, without importing the runner at start-up
WIDTH_HELP = "Width in CSS pixels (default: the template's). For PDF it sets the page, over the template's page_size."
HEIGHT_HELP = "Height in CSS pixels (default: the template's). For PDF it sets the page, over the template's page_size."
EXIT_ROWS_FAILED = 1
EXIT_UNUSABLE = 2


class Fatal(click.ClickException):
    """A run that cannot start: printed as 'error: …', exit code 2."""

    exit_code = EXIT_UNUSABLE

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def fatal_from(exc: PressrunError) -> Fatal:
    return Fatal(exc.message)


class CommandGroup(click.Group):
    """The root group. The server commands are imported only when asked for: they pull in the
    database layer (SQLAlchemy, Alembic), almost half a second that ``render`` should not pay."""

    lazy = {"serve": "pressrun.cli.server:serve", "keys": "pressrun.cli.server:keys"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module_name, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pressrun")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """pressrun: one template × N rows = N images or PDFs."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # At exit, Python's last garbage collections walk every object pydantic, Babel, Jinja and
    # Playwright left behind: about 0.13 s of CPU after the work is done, on every command. Frozen
    # objects are skipped; the process is ending and the OS takes the memory back either way.
    atexit.unregister(gc.freeze)  # once, however often main() runs in this process (tests)
    atexit.register(gc.freeze)


def render_options(bundle: TemplateBundle, fmt: str | None, quality: int | None, scale: float | None,
                   width: int | None, height: int | None) -> RenderOptions:
    """The template's settings with this command's options over them (pressrun.options: the API's rule too)."""
    from pressrun.options import Overrides, resolve_options

    overrides = Overrides(format=fmt, quality=quality, scale=scale, width_px=width, height_px=height)
    return resolve_options(bundle.manifest.defaults, overrides)


def load_settings(
    locale: str | None, strict: bool | None, concurrency: int | None, bundle: TemplateBundle
) -> Settings:
    from pressrun.settings import Settings

    return Settings.load(
        **{
            "templating.locale": locale or bundle.manifest.defaults.locale,
            "templating.strict": strict,
            "render.concurrency": concurrency,
        }
    )


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """``pressrun render``'s arguments and options, as click parsed them."""

    template: Path
    data: Path
    out_dir: Path
    fmt: str | None = None
    quality: int | None = None
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    concurrency: int | None = None
    filename_pattern: str | None = None
    zip_path: Path | None = None
    merge_pdf_path: Path | None = None
    locale: str | None = None
    strict: bool | None = None


@main.command()
@click.argument("template", type=click.Path(exists=True, path_type=Path))
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the output files (created if missing).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES, case_sensitive=False),
              help="Output format (default: the template's, else png).")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG/WebP quality, 1-100.")
@click.option("--scale", type=click.FloatRange(1, 4), help="Device pixel ratio, 1-4.")
@click.option("--width", type=click.IntRange(1, 10_000), help=WIDTH_HELP)
@click.option("--height", type=click.IntRange(1, 10_000), help=HEIGHT_HELP)
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="Pages rendering at once (default: 2 per browser; one browser per CPU, at most 8).")
@click.option("--filename", "filename_pattern",
              help="File name template over the row, e.g. '{{ id }}-{{ name }}'. The output format's extension "
                   "is added; a .png/.jpg/.jpeg/.webp/.pdf/.gif ending in the result is replaced by it.")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every output into this ZIP (inside OUT, no row takes its name).")
@click.option("--merge-pdf", "merge_pdf_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also merge every PDF, in row order, into this file (PDF output: --format pdf or the "
                   "template's format; inside OUT, no row takes its name). If every row fails, none is written "
                   "and an old file there is removed.")
@click.option("--locale", help="Locale for number/currency/date filters, e.g. de_DE.")
@click.option("--strict/--no-strict", default=None,
              help="Fail rows that lack a variable the template uses (default) or render it empty.")
def render(**params: Any) -> None:
    """Render TEMPLATE once per row of DATA (CSV, JSON, JSONL or XLSX) into OUT."""
    from pressrun.driver import PrestartedDriver

    args = RenderArgs(**params)
    try:
        with PrestartedDriver() as driver:
            report = render_rows(driver, args)
    except PressrunError as exc:
        raise fatal_from(exc) from exc
    except OSError as exc:  # the run's own files are translated in the runner; this is the last resort
        raise Fatal(f"{exc.filename or 'output'}: {exc.strerror or exc}") from exc
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    for note in report.notes:
        click.echo(note, err=True)
    summary = (
        f"{report.completed} rendered, {report.failed} failed of {report.total} rows "
        f"in {report.elapsed_s:.1f} s ({report.rate_per_s:.1f} rows/s) → {args.out_dir}"
    )
    if report.errors_path is not None:
        summary += f"; failed rows are listed in {report.errors_path}"
    click.echo(summary)
    if report.failed:
        sys.exit(EXIT_ROWS_FAILED)


def render_rows(driver: PrestartedDriver, args: RenderArgs) -> RunReport:
    # Imported here, while Playwright's driver starts on the other core.
    from pressrun.cli.progress import RunProgress
    from pressrun.data import open_rows
    from pressrun.runner import RunSpec, prepare, run_batch
    from pressrun.templating.bundle import load_template

    bundle = load_template(args.template)
    options = render_options(bundle, args.fmt, args.quality, args.scale, args.width, args.height)
    if args.merge_pdf_path is not None and options.format is not OutputFormat.PDF:
        raise Fatal(f"--merge-pdf needs PDF output, but the format is {options.format.value}; add --format pdf")
    check_destinations(args.out_dir, args.zip_path, args.merge_pdf_path)
    settings = load_settings(args.locale, args.strict, args.concurrency, bundle)
    rows = open_rows(args.data)  # the pipeline applies the template's column types to each row
    spec = RunSpec(bundle, rows, args.out_dir, options, args.filename_pattern, args.zip_path, args.merge_pdf_path)
    prepared = prepare(spec, settings)
    with RunProgress(prepared.total) as progress:
        return driver.run(run_batch(spec, settings, prepared, progress.update, driver=driver.playwright))


def check_destinations(out_dir: Path, zip_path: Path | None, merge_pdf_path: Path | None) -> None:
    """Refuse, before anything renders, a destination the run could not write at its end."""
    from pressrun.cli.paths import check_output_file, check_output_folder

    check_output_folder("-o/--out", out_dir)
    if zip_path is not None:
        check_output_file("--zip", zip_path)
    if merge_pdf_path is not None:
        check_output_file("--merge-pdf", merge_pdf_path)
        if zip_path is not None and zip_path.absolute() == merge_pdf_path.absolute():
            raise Fatal(f"--zip and --merge-pdf are the same file ({zip_path}); give them different names")
    for option, path in (("--zip", zip_path), ("--merge-pdf", merge_pdf_path)):
        if path is not None and path.absolute() == (out_dir / ERRORS_NAME).absolute():
            raise Fatal(f"{option} {path}: that is where failed rows are listed; choose another name")


def preview_format(out_path: Path, fmt: str | None) -> str:
    """The format of ``preview -o``: --format, which the file's extension must not contradict, else the
    extension. A file named for another format than it holds is refused."""
    suffix = out_path.suffix.lower()
    from_suffix = OutputFormat.parse(suffix[1:]) if suffix[1:] in FORMAT_CHOICES else None
    if fmt is None:
        if from_suffix is None:
            kind = f"the extension {suffix!r} is not an output format" if suffix else "the file has no extension"
            raise Fatal(f"-o {out_path}: {kind}; name it .png, .jpg, .webp or .pdf, or give --format")
        return from_suffix.value
    chosen = OutputFormat.parse(fmt)
    if from_suffix is not None and from_suffix is not chosen:
        raise Fatal(f"-o {out_path}: the extension {suffix!r} does not match --format {fmt}; "
                    f"name it {out_path.with_suffix('.' + chosen.extension).name} or drop --format")
    return chosen.value


@main.command()
@click.argument("template", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON file with one row (an object; for an array, its first element).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file; its extension picks the format unless --format is given.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES, case_sensitive=False),
              help="Output format; must match -o's extension when it has one (default: the extension's).")
@click.option("--scale", type=click.FloatRange(1, 4), help="Device pixel ratio, 1-4.")
@click.option("--width", type=click.IntRange(1, 10_000), help=WIDTH_HELP)
@click.option("--height", type=click.IntRange(1, 10_000), help=HEIGHT_HELP)
@click.option("--locale", help="Locale for number/currency/date filters, e.g. de_DE.")
def preview(
    template: Path, data_path: Path | None, out_path: Path, fmt: str | None, scale: float | None,
    width: int | None, height: int | None, locale: str | None,
) -> None:
    """Render TEMPLATE once, with --data or the template's sample row, for template authors."""
    from pressrun.driver import PrestartedDriver

    try:
        with PrestartedDriver() as driver:
            # Imported here, while Playwright's driver starts on the other core.
            from pressrun.cli.paths import check_output_file
            from pressrun.runner import write_output
            from pressrun.templating.bundle import load_template
            from pressrun.templating.engines import make_engine
            from pressrun.templating.prepared import prepare_bundle

            bundle = load_template(template)
            options = render_options(bundle, preview_format(out_path, fmt), None, scale, width, height)
            check_output_file("-o/--out", out_path)
            row, strict = preview_row(bundle, data_path)
            settings = load_settings(locale, strict, 1, bundle)
            prepared = prepare_bundle(bundle, make_engine(settings))
            result = driver.run(render_one(settings, prepared, row, options, driver.playwright))
            out_path.parent.mkdir(parents=True, exist_ok=True)
            write_output(out_path, result.data)
    except RowError as exc:
        click.echo(f"error: {exc.message} [{exc.code}]", err=True)
        sys.exit(EXIT_ROWS_FAILED)
    except PressrunError as exc:
        raise fatal_from(exc) from exc
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        raise Fatal(f"-o {out_path}: {exc.strerror or exc}") from exc
    click.echo(f"{out_path} ({result.width_px}×{result.height_px} {result.format.value}, "
               f"{len(result.data):,} bytes, {result.render_ms:.0f} ms)")


def preview_row(bundle: TemplateBundle, data_path: Path | None) -> tuple[dict[str, Any], bool | None]:
    """The row to preview with, and whether to force lenient mode (no data at all: show the layout).
    The manifest's [columns] types apply to it in the pipeline, as they do to a data file's rows."""
    if data_path is None:
        if bundle.manifest.sample:
            return copy.deepcopy(bundle.manifest.sample[0]), None
        return {}, False
    try:
        value = json.loads(data_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Fatal(f"--data {data_path}: not valid JSON ({exc})") from exc
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        raise Fatal(f"--data {data_path}: expected a JSON object (one row), got {type(value).__name__}")
    return value, None


async def render_one(settings: Settings, template: PreparedTemplate, row: dict[str, Any], options: RenderOptions,
                     driver: Awaitable[Playwright]) -> RenderResult:
    """One row through the item pipeline. The row is typed and evaluated before Chromium starts: a
    bad value or a missing variable (exit 1) costs no browser. A failure is raised (RowError: exit 1)."""
    from pressrun.pipeline import ItemPipeline, failure
    from pressrun.rendering import ChromiumRenderer

    renderer = ChromiumRenderer(settings.render, concurrency=1, driver=driver)
    pipeline = ItemPipeline(template, options, renderer)
    try:
        document = await pipeline.document(await pipeline.type_row(row))
        async with renderer:
            return await pipeline.capture(document)
    except Exception as exc:
        failed = failure(exc)  # the policy: what stops is raised as it is
        if failed.error is exc:
            raise
        raise failed.error from exc  # a bug, as internal_error


@main.command()
@click.argument("template", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of one path per line.")
def variables(template: Path, as_json: bool) -> None:
    """List the variables TEMPLATE reads from each row, nested paths included."""
    from pressrun.settings import Settings
    from pressrun.templating.bundle import load_template
    from pressrun.templating.engines import make_engine

    try:
        bundle = load_template(template)
        compiled = make_engine(Settings.load()).compile(bundle.source, name=bundle.source_name)
    except PressrunError as exc:
        raise fatal_from(exc) from exc
    names = compiled.variables()
    click.echo(json.dumps(names) if as_json else "\n".join(names))


@main.command("settings")
def settings_command() -> None:
    """Print every setting: name, environment variable, default and help."""
    from pressrun.settings import iter_settings_table

    for name, env, default, help_text in iter_settings_table():
        click.echo(f"{name}\n  env: {env}\n  default: {default!r}\n  {help_text}\n")


__all__ = ["main"]
