"""FakeRenderer: the renderer role without Chromium, for fast tests of the layers above rendering
(API routes, the dispatcher, the runner, webhooks).

It renders no HTML. It returns a *valid* file of the requested format and device size
(``RenderOptions.output_size_px``; for PDFs, pages of ``options.pdf.page_inches(...)``), filled with
one colour derived from the document (:func:`colour_for`), so tests can tell rows apart by a pixel.
Every call is recorded in :attr:`FakeRenderer.calls`.

Driving it from a test — markers in the document, found anywhere in the HTML:

- ``data-fake-error="<code>"``: the render raises the :class:`~pressrun.errors.RowError` subclass
  whose ``code`` is ``<code>`` (``render_timeout``, ``render_crashed``, ``blocked_url``, ... — every
  RowError subclass in pressrun.errors, derived from the classes, not listed here). ``empty_output``
  instead makes the capture empty, so the error comes from the same check the real renderer runs
  (``pool.check_not_empty``).
- ``data-fake-pages="<n>"``: a PDF of ``n`` pages (default 1). Like the real renderer, the result
  says ``pages=1`` whatever the file holds; the pipeline counts pages when asked (``count_pages``).

And attributes of the renderer:

- ``unavailable = True``: Chromium is gone. ``start()`` and ``render()`` raise
  BrowserUnavailableError and ``is_connected()`` is False, until it is set back to False.
- ``delay_s``: every render takes at least this long (rows in flight, cancel tests); ``in_flight``
  and ``peak_in_flight`` count renders under way, at most ``concurrency`` at once as in the real pool.

Lifecycle as the real one: ``start()``/``close()`` or ``async with``. Rendering before ``start()`` or
after ``close()`` raises RuntimeError (the real renderer would wait for a page forever, or fail an
assertion).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pressrun.errors import BrowserUnavailableError, EmptyOutputError, RowError
from pressrun.models import OutputFormat, RenderOptions, RenderResult
from pressrun.rendering.pool import check_not_empty
from pressrun.settings import RenderSettings

ERROR_MARKER = re.compile(r"""data-fake-error\s*=\s*["']?([A-Za-z0-9_]+)""")
PAGES_MARKER = re.compile(r"""data-fake-pages\s*=\s*["']?([0-9]+)""")


@dataclass(frozen=True)
class RenderCall:
    """One call of :meth:`FakeRenderer.render`, as it was made."""

    html: str
    options: RenderOptions
    asset_root: Path | None


def row_errors_by_code() -> dict[str, type[RowError]]:
    """Every RowError subclass (however deep) by its ``code``: what ``data-fake-error`` can name."""
    found: dict[str, type[RowError]] = {}
    pending: list[type[RowError]] = list(RowError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def colour_for(html: str) -> tuple[int, int, int]:
    """The RGB colour the fake paints a document with: stable across runs, different between rows."""
    digest = hashlib.sha256(html.encode("utf-8", "surrogatepass")).digest()
    return digest[0], digest[1], digest[2]


class FakeRenderer:
    """Plays :class:`~pressrun.rendering.base.Renderer`; see the module docstring for how to drive it."""

    def __init__(
        self, settings: RenderSettings | None = None, *, concurrency: int | None = None, delay_s: float = 0.0
    ) -> None:
        self.settings = settings or RenderSettings()
        self.concurrency = concurrency or self.settings.concurrency
        self.delay_s = delay_s
        self.unavailable = False
        self.calls: list[RenderCall] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.started = False
        self.closed = False
        self._pages = asyncio.Semaphore(self.concurrency)

    async def __aenter__(self) -> FakeRenderer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._raise_if_unavailable()
        self.started, self.closed = True, False

    async def close(self) -> None:
        self.closed = True

    def is_connected(self) -> bool:
        return self.started and not self.closed and not self.unavailable

    async def render(self, html: str, options: RenderOptions, *, asset_root: Path | None = None) -> RenderResult:
        """Record the call, then paint, fail or wait as the document's markers and the switches say."""
        if not self.started or self.closed:
            state = "closed" if self.closed else "not started"
            raise RuntimeError(f"FakeRenderer.render called while the renderer is {state}; use start() or async with")
        self.calls.append(RenderCall(html, options, asset_root))
        began = time.perf_counter()
        async with self._pages:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                if self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                self._raise_if_unavailable()
                empty = self._injected_error(html)
                # The page count stays 1, as the real renderer reports it (the pipeline counts pages when asked).
                data = b"" if empty else (await asyncio.to_thread(paint, html, options))[0]
            finally:
                self.in_flight -= 1
        width, height = options.output_size_px
        result = RenderResult(data=data, format=options.format, width_px=width, height_px=height,
                              render_ms=(time.perf_counter() - began) * 1000)
        check_not_empty(result)
        return result

    def _raise_if_unavailable(self) -> None:
        if self.unavailable:
            raise BrowserUnavailableError(
                "Chromium is unavailable (FakeRenderer.unavailable is set)", setting="PRESSRUN_CHROMIUM_PATH"
            )

    @staticmethod
    def _injected_error(html: str) -> bool:
        """Raise the error a ``data-fake-error`` marker names; True when it asks for an empty capture."""
        marker = ERROR_MARKER.search(html)
        if marker is None:
            return False
        code = marker.group(1)
        if code == EmptyOutputError.code:
            return True
        known = row_errors_by_code()
        if code not in known:
            raise ValueError(f"data-fake-error={code!r} names no RowError; valid codes are {', '.join(sorted(known))}")
        raise known[code](f"{code} injected by the document's data-fake-error marker (FakeRenderer)")


def paint(html: str, options: RenderOptions) -> tuple[bytes, int]:
    """A file of the requested format and size in the document's colour, and its page count."""
    if options.format is OutputFormat.PDF:
        marker = PAGES_MARKER.search(html)
        pages = max(1, int(marker.group(1))) if marker else 1
        width_in, height_in = options.pdf.page_inches(options.width_px, options.height_px)
        return blank_pdf(width_in * 72, height_in * 72, pages), pages
    return solid_image(colour_for(html), options), 1


def solid_image(colour: tuple[int, int, int], options: RenderOptions) -> bytes:
    # Imported here: numpy and imagecodecs cost start-up that only tests using the fake should pay.
    import imagecodecs
    import numpy as np

    width, height = options.output_size_px
    alpha = options.transparent and options.format is not OutputFormat.JPEG
    pixels = np.empty((height, width, 4 if alpha else 3), dtype=np.uint8)
    pixels[...] = (*colour, 255) if alpha else colour
    if options.format is OutputFormat.PNG:
        return bytes(imagecodecs.png_encode(pixels, level=1))
    if options.format is OutputFormat.JPEG:
        return bytes(imagecodecs.jpeg_encode(pixels, level=options.quality))
    return bytes(imagecodecs.webp_encode(pixels, level=options.quality))


def blank_pdf(width_pt: float, height_pt: float, pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=width_pt, height=height_pt)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
