"""The one options resolver: what a template says about its output, plus what a run or a request asks
for, becomes the :class:`RenderOptions` a row is rendered with. The CLI (``render``, ``preview``), the
API's single renders and its batches all resolve through :func:`resolve_options`, so one rule holds
everywhere; :class:`RenderOptions` validates the result once (ranges, page sizes, what a format can hold).

The rules:

- an override replaces the template's value; ``None`` keeps the template's;
- a page asked for in pixels replaces the template's *named* page: a ``width`` or ``height`` override
  on a template whose PDF page is ``a4`` gives a page of that many pixels (at 96 per inch), not A4 with
  the width ignored; a ``page_size`` override in the same request wins over that;
- the other PDF page fields (``landscape``, ``margin_mm``) override one by one;
- the locale is the override's, else the template's, else the engine's default (``None`` here).

A batch resolves its options when it is accepted and stores them (format, size, quality, scale and the
PDF page): its items render with exactly what was accepted (:func:`stored_batch_options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pressrun.models import OutputFormat, PdfOptions, RenderOptions

A4_AT_96_DPI_PX = (794, 1123)


@dataclass(frozen=True)
class TemplateDefaults:
    """What a template says about its output, with pressrun's defaults for what it leaves out."""

    width_px: int = 1200
    height_px: int = 630
    format: OutputFormat = OutputFormat.PNG
    quality: int = 90
    scale: float = 1.0
    locale: str | None = None
    pdf: PdfOptions = field(default_factory=PdfOptions)

    @classmethod
    def of_stored(cls, version: Any) -> TemplateDefaults:
        """A stored template version (a database row with width, height, format, … and ``pdf``)."""
        return cls(version.width, version.height, OutputFormat.parse(version.format), version.quality,
                   version.scale, version.locale, PdfOptions.from_dict(version.pdf))

    def to_stored(self) -> dict[str, Any]:
        """The template version's columns :meth:`of_stored` reads (a template folder imported by the service)."""
        return {"width": self.width_px, "height": self.height_px, "format": self.format.value,
                "quality": self.quality, "scale": self.scale, "locale": self.locale, "pdf": self.pdf.to_dict()}


@dataclass(frozen=True)
class Overrides:
    """What one run or request asks for over the template's own settings; ``None``: the template's."""

    format: str | OutputFormat | None = None
    width_px: int | None = None
    height_px: int | None = None
    quality: int | None = None
    scale: float | None = None
    page_size: str | None = None
    landscape: bool | None = None
    margin_mm: float | None = None
    selector: str | None = None
    locale: str | None = None


def resolve_options(defaults: TemplateDefaults, overrides: Overrides) -> RenderOptions:
    """The options a row renders with. Raises UsageError naming the field for a value out of range."""
    pdf = defaults.pdf
    if overrides.width_px is not None or overrides.height_px is not None:
        pdf = dataclasses.replace(pdf, page_size=None, landscape=False)
    pdf_changes = {name: value for name, value in (("page_size", overrides.page_size),
                                                   ("landscape", overrides.landscape),
                                                   ("margin_mm", overrides.margin_mm)) if value is not None}
    if pdf_changes:
        pdf = PdfOptions.from_dict({**pdf.to_dict(), **pdf_changes})
    fmt = overrides.format
    return RenderOptions(
        format=OutputFormat.parse(fmt) if fmt is not None else defaults.format,
        width_px=pick(overrides.width_px, defaults.width_px),
        height_px=pick(overrides.height_px, defaults.height_px),
        scale=pick(overrides.scale, defaults.scale),
        quality=pick(overrides.quality, defaults.quality),
        pdf=pdf,
        selector=overrides.selector,
    )


def resolve_locale(defaults: TemplateDefaults, overrides: Overrides) -> str | None:
    return pick(overrides.locale, defaults.locale)


def pick(override: Any, default: Any) -> Any:
    return default if override is None else override


def batch_fields(options: RenderOptions) -> dict[str, Any]:
    """What a batch stores of its resolved options (the columns :func:`stored_batch_options` reads)."""
    return {"format": options.format.value, "width": options.width_px, "height": options.height_px,
            "quality": options.quality, "scale": options.scale, "pdf": options.pdf.to_dict()}


def stored_batch_options(batch: Any, template_pdf: PdfOptions) -> RenderOptions:
    """The options a batch's items render with, as accepted. Batches accepted before the PDF page was
    stored with the batch (``pdf`` is NULL) use their template version's page, as they did then."""
    defaults = TemplateDefaults.of_stored(batch)  # a batch stores the output columns a template version has
    if batch.pdf is None:
        defaults = dataclasses.replace(defaults, pdf=template_pdf)
    return resolve_options(defaults, Overrides())
