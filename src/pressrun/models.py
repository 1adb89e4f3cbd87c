"""Pure data shared by the CLI, the API, the pipeline, the renderer and the workers: output formats, page
and render options, render results, and the states of batches, items and webhook deliveries with the
rules derived from them. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from pressrun.errors import UsageError


class OutputFormat(enum.StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    PDF = "pdf"

    @property
    def extension(self) -> str:
        return "jpg" if self is OutputFormat.JPEG else self.value

    @property
    def media_type(self) -> str:
        return "application/pdf" if self is OutputFormat.PDF else f"image/{self.value}"

    @property
    def is_image(self) -> bool:
        return self is not OutputFormat.PDF

    @classmethod
    def parse(cls, value: str, *, field_name: str = "format") -> OutputFormat:
        normalized = str(value).strip().lower()
        if normalized == "jpg":
            normalized = "jpeg"
        try:
            return cls(normalized)
        except ValueError:
            valid = ", ".join(f.value for f in cls)
            raise UsageError(
                f"{field_name}: {value!r} is not a supported format; valid formats are {valid}",
                field=field_name,
                value=value,
                valid=[f.value for f in cls],
            ) from None


class _Lifecycle(enum.StrEnum):
    """A status enum whose states are either open (still moving) or finished. Subclasses name their
    open states; the finished ones are the rest, so the two sets cannot drift apart."""

    @classmethod
    def open(cls) -> tuple[Self, ...]:
        raise NotImplementedError

    @classmethod
    def finished(cls) -> tuple[Self, ...]:
        return tuple(state for state in cls if state not in cls.open())


class ItemStatus(_Lifecycle):
    """What a batch item's row says. ``queued`` → ``rendering`` → completed, failed or cancelled;
    a retry puts failed items back to ``queued``.

    "expired" is deliberately not a member: it is never stored. It is the status *shown* for a
    completed item whose file the retention sweeper deleted (the row stays ``completed`` with an
    ``expired_at``); :data:`SHOWN_EXPIRED` names it and :func:`pressrun.jobs.results.shown_status`
    applies it. Filtering items by status (``?status=``) therefore accepts only members."""

    QUEUED = "queued"
    RENDERING = "rendering"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def open(cls) -> tuple[ItemStatus, ...]:
        """Items a batch still waits for (the rest are finished)."""
        return cls.QUEUED, cls.RENDERING


SHOWN_EXPIRED = "expired"


class BatchStatus(_Lifecycle):
    """``pending`` until its first item is claimed, ``processing`` while items are open, then one of
    the finished states chosen by :func:`closing_status`. A retry reopens a finished batch."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def open(cls) -> tuple[BatchStatus, ...]:
        """Batches that still have (or may get) work: they count against a plan's open-batch limit.
        The rest are finished: completed, partial, failed, cancelled."""
        return cls.PENDING, cls.PROCESSING


def closing_status(*, cancel_requested: bool, completed: int, failed: int) -> BatchStatus:
    """The status of a batch whose last open item just finished, from its item counts."""
    if cancel_requested:
        return BatchStatus.CANCELLED
    if failed == 0:
        return BatchStatus.COMPLETED
    if completed == 0:
        return BatchStatus.FAILED
    return BatchStatus.PARTIAL


class DeliveryStatus(enum.StrEnum):
    """A webhook delivery: ``pending`` while attempts remain (due at ``next_attempt_at``), then
    ``succeeded`` or ``failed``. A redelivery makes it ``pending`` again."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# CSS page sizes Chromium understands, in inches (width, height) portrait.
PAGE_SIZES_IN: dict[str, tuple[float, float]] = {
    "letter": (8.5, 11.0),
    "legal": (8.5, 14.0),
    "tabloid": (11.0, 17.0),
    "a3": (297 / 25.4, 420 / 25.4),
    "a4": (210 / 25.4, 297 / 25.4),
    "a5": (148 / 25.4, 210 / 25.4),
    "a6": (105 / 25.4, 148 / 25.4),
}


# The largest image side each encoder can write, in device pixels (WebP stores 14-bit dimensions,
# JPEG 16-bit ones). Past it Chromium hands back an empty capture instead of an error.
MAX_SIDE_PX: dict[OutputFormat, int] = {OutputFormat.WEBP: 16_383, OutputFormat.JPEG: 65_535}


@dataclass(frozen=True)
class PdfOptions:
    """How a PDF page is laid out. ``page_size`` is a name from PAGE_SIZES_IN, or None to use the
    template's pixel width/height (at 96 px per inch) as the page."""

    page_size: str | None = None
    landscape: bool = False
    margin_mm: float = 0.0
    print_background: bool = True

    def page_inches(self, width_px: int, height_px: int) -> tuple[float, float]:
        if self.page_size is None:
            return width_px / 96.0, height_px / 96.0
        w, h = PAGE_SIZES_IN[self.page_size]
        return (h, w) if self.landscape else (w, h)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, *, field_prefix: str = "pdf") -> PdfOptions:
        """The one converter from the stored form (``{"page_size", "landscape", "margin_mm"}``, as in a
        manifest's ``[pdf]`` table, a template version's and a batch's ``pdf`` column) to options.
        Missing keys take their defaults; anything else raises :class:`UsageError` naming
        ``<field_prefix>.<key>``, the value and what is valid."""
        raw = raw or {}
        if not isinstance(raw, Mapping):
            valid = f"a table with {', '.join(PDF_KEYS)}"
            raise UsageError(f"{field_prefix}: {raw!r} is not valid; expected {valid}", field=field_prefix,
                             value=raw, valid=valid)
        for key in raw:
            if key not in PDF_KEYS:
                raise pdf_problem(field_prefix, key, raw[key], f"one of the keys {', '.join(PDF_KEYS)}")
        page_size = raw.get("page_size")
        if page_size is not None:
            if not isinstance(page_size, str) or page_size.lower() not in PAGE_SIZES_IN:
                raise pdf_problem(field_prefix, "page_size", page_size, f"one of {', '.join(PAGE_SIZES_IN)}")
            page_size = page_size.lower()
        landscape = raw.get("landscape", False)
        if not isinstance(landscape, bool):
            raise pdf_problem(field_prefix, "landscape", landscape, "true or false")
        margin = raw.get("margin_mm", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin <= MAX_MARGIN_MM:
            raise pdf_problem(field_prefix, "margin_mm", margin, f"a number of millimetres from 0 to {MAX_MARGIN_MM}")
        return cls(page_size=page_size, landscape=landscape, margin_mm=float(margin))

    def to_dict(self) -> dict[str, Any]:
        """The stored form :meth:`from_dict` reads (JSON-ready)."""
        return {"page_size": self.page_size, "landscape": self.landscape, "margin_mm": self.margin_mm}


PDF_KEYS = ("page_size", "landscape", "margin_mm")
MAX_MARGIN_MM = 100


def pdf_problem(prefix: str, key: str, value: Any, valid: str) -> UsageError:
    return UsageError(f"{prefix}.{key}: {value!r} is not valid; expected {valid}", field=f"{prefix}.{key}",
                      value=value, valid=valid)


@dataclass(frozen=True)
class RenderOptions:
    """Everything that decides how one row becomes one file. Units are in the field names."""

    format: OutputFormat = OutputFormat.PNG
    width_px: int = 1200
    height_px: int = 630
    scale: float = 1.0
    quality: int = 90  # JPEG / WebP only
    pdf: PdfOptions = field(default_factory=PdfOptions)
    transparent: bool = False  # PNG/WebP: omit the white page background
    selector: str | None = None  # images only: capture just the first element matching this CSS selector

    def __post_init__(self) -> None:
        validate_range("width", self.width_px, 1, 10_000)
        validate_range("height", self.height_px, 1, 10_000)
        validate_range("scale", self.scale, 1, 4)
        validate_range("quality", self.quality, 1, 100)
        if self.pdf.page_size is not None and self.pdf.page_size not in PAGE_SIZES_IN:
            raise UsageError(
                f"page size: {self.pdf.page_size!r} is not known; valid sizes are {', '.join(PAGE_SIZES_IN)}",
                field="pdf.page_size",
                value=self.pdf.page_size,
                valid=list(PAGE_SIZES_IN),
            )
        validate_image_size(self)

    @property
    def output_size_px(self) -> tuple[int, int]:
        return round(self.width_px * self.scale), round(self.height_px * self.scale)


def validate_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UsageError(
            f"{name}: {value!r} is out of range; valid values are {low:g} to {high:g}",
            field=name,
            value=value,
            valid=f"{low:g}-{high:g}",
        )


def validate_image_size(options: RenderOptions) -> None:
    """Refuse an image larger than its format can hold: ``width 4096 × scale 4`` is too wide for WebP."""
    limit = MAX_SIDE_PX.get(options.format)
    if limit is None:
        return
    for name, css_px, device_px in zip(("width", "height"), (options.width_px, options.height_px),
                                       options.output_size_px, strict=True):
        if device_px > limit:
            name_cap = options.format.value.upper() if options.format is OutputFormat.JPEG else "WebP"
            raise UsageError(
                f"{name}: {css_px} px × scale {options.scale:g} = {device_px} px, more than a {name_cap} image"
                f" can hold ({limit} px a side); lower the {name} or the scale, or use png",
                field=name,
                value=css_px,
                scale=options.scale,
                valid=f"{name} × scale ≤ {limit}",
            )


@dataclass(frozen=True)
class RenderResult:
    """What the renderer produced for one row."""

    data: bytes
    format: OutputFormat
    width_px: int
    height_px: int
    pages: int = 1
    render_ms: float = 0.0
