"""The item pipeline: one row of data becomes one file.

Every path that renders a row goes through :class:`ItemPipeline`: the CLI runner (``pressrun render``),
``pressrun preview``, the embedded dispatcher (batch items) and the API's single renders. The steps,
in order:

1. **column typing**: the template's column types turn the row's text into numbers, dates, booleans
   (:meth:`PreparedTemplate.typed`);
2. **file name**: the batch's or run's file-name pattern, rendered over the typed row (the engine escapes
   HTML; a file name is the row's own text, so it is unescaped);
3. **template evaluation**: the sandboxed engine renders the row to HTML, in a worker thread (the
   isolated engine's child processes do the work; the event loop never waits on a template);
4. **document**: the HTML wrapped into the document Chromium loads (base style, stylesheet);
5. **render and encode**: the renderer captures the document as PNG/JPEG/WebP or prints it as PDF
   (a page that crashes mid-row is retried once on a fresh page, inside the renderer).

Storing the bytes is the caller's: a file in a folder (CLI), an object in storage (dispatcher), a
response body (API).

**Error policy** (one for every caller, :func:`disposition`):

- an error of the row (:class:`RowError`: a missing variable, a bad value, a template that times out,
  a blocked URL, Chromium timing out on this document…) or of its options (:class:`UsageError` and the
  other :class:`PressrunError`\\ s) **fails the row**: the caller records it (``errors.jsonl``, the
  item's error, a 4xx answer) and goes on with the next row;
- an unexpected exception (a bug) also **fails the row**, as ``internal_error`` with the exception's
  type name only (logged with its traceback): one bug must not cost the other 49,999 rows;
- an error of the machine, not the row (:class:`BrowserUnavailableError`: Chromium cannot be started;
  :class:`TemplateEngineUnavailableError`: no template process can be started or became free;
  :class:`OutputError`: the output cannot be written, a full disk; :class:`ConfigError`) **stops**:
  every later row would fail the same way. It is raised out of the pipeline: the CLI stops the run
  (exit 2); the dispatcher puts the item back in the queue and pauses, so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from html import unescape
from typing import TYPE_CHECKING, Any

from pressrun.errors import (
    BrowserUnavailableError,
    ConfigError,
    OutputError,
    PressrunError,
    TemplateEngineUnavailableError,
    error_body,
)
from pressrun.models import OutputFormat, RenderOptions, RenderResult
from pressrun.templating.prepared import PreparedTemplate, RowTemplate

if TYPE_CHECKING:
    from pressrun.rendering.base import Renderer

log = logging.getLogger(__name__)

MAX_FILE_NAME_CHARS = 300  # of a pattern's output, before the namer makes it a safe, unique name


class Disposition(enum.StrEnum):
    FAIL_ROW = "fail_row"  # record the row's failure, go on
    STOP = "stop"  # the run cannot go on: raise to the caller


STOPPING_ERRORS: tuple[type[PressrunError], ...] = (
    BrowserUnavailableError, TemplateEngineUnavailableError, OutputError, ConfigError,
)


def disposition(exc: BaseException) -> Disposition:
    """What an error raised while rendering a row means for the run (see the module docstring)."""
    return Disposition.STOP if isinstance(exc, STOPPING_ERRORS) else Disposition.FAIL_ROW


@dataclass(frozen=True)
class Rendered:
    result: RenderResult
    file_name: str | None  # the file-name pattern's text for this row; None without a pattern


@dataclass(frozen=True)
class Failed:
    error: PressrunError

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message

    def body(self) -> dict[str, Any]:
        """``{"code", "message", **details}``: errors.jsonl, a failed item, a problem+json answer."""
        return error_body(self.error)


Outcome = Rendered | Failed


@dataclass(frozen=True)
class TypedRow:
    """A row after steps 1 and 2: typed values and its file-name text."""

    values: dict[str, Any]
    file_name: str | None


class ItemPipeline:
    """One template rendered with one set of options, row after row. Cheap to make: one per run, per
    batch, per request. ``count_pages``: PDF results carry their page count (single renders answer it)."""

    def __init__(self, template: PreparedTemplate, options: RenderOptions, renderer: Renderer, *,
                 locale: str | None = None, filename: RowTemplate | None = None, count_pages: bool = False) -> None:
        self.template, self.options, self.renderer = template, options, renderer
        self.locale, self.filename, self.count_pages = locale, filename, count_pages

    async def run(self, values: Mapping[str, Any], *, typed: TypedRow | None = None) -> Outcome:
        """Every step, under the error policy: an outcome for the row, or the stopping error raised.
        ``typed``: steps 1-2 already done (the CLI names its files in row order before rendering)."""
        try:
            row = typed or await self.type_row(values)
            return Rendered(await self.render(row), row.file_name)
        except Exception as exc:
            return failure(exc)

    async def type_row(self, values: Mapping[str, Any]) -> TypedRow:
        """Steps 1-2. Raises the row's error."""
        typed = self.template.typed(dict(values))
        file_name = None
        if self.filename is not None:
            text = await asyncio.to_thread(self.filename.render, typed)
            file_name = unescape(text)[:MAX_FILE_NAME_CHARS]
        return TypedRow(typed, file_name)

    async def render(self, row: TypedRow) -> RenderResult:
        """Steps 3-5. Raises the row's error."""
        return await self.capture(await self.document(row))

    async def document(self, row: TypedRow) -> str:
        """Steps 3-4: the document Chromium loads. Raises the row's error."""
        def evaluate() -> str:  # in a worker thread: nothing that grows with a row's output runs on the event loop
            return self.template.document(self.template.template.render(row.values, locale=self.locale))

        return await asyncio.to_thread(evaluate)

    async def capture(self, document: str) -> RenderResult:
        """Step 5. Raises the row's error."""
        result = await self.renderer.render(document, self.options, asset_root=self.template.asset_root)
        if self.count_pages and result.format is OutputFormat.PDF:
            from pressrun.rendering.pdf import page_count  # pypdf: only where pages are counted

            result = replace(result, pages=await asyncio.to_thread(page_count, result.data))
        return result

def failure(exc: Exception) -> Failed:
    """The error policy: ``exc`` as a failed row, or raised again when the run cannot go on."""
    if disposition(exc) is Disposition.STOP:
        raise exc
    if isinstance(exc, PressrunError):
        return Failed(exc)
    log.error("unexpected error rendering a row", exc_info=exc)
    # Recorded as internal_error (the base class's code) with the exception's type, never its text.
    return Failed(PressrunError(error_body(exc)["message"]))
