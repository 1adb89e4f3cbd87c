"""Request and response bodies. JSON field names are camelCase, as in Pictify's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import babel
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic.alias_generators import to_camel

from pressrun.data.types import VALID_TYPE_NAMES
from pressrun.models import PAGE_SIZES_IN, BatchStatus

Format = Literal["png", "jpeg", "jpg", "webp", "pdf"]
MAX_HTML = 2_000_000
MAX_CSS = 1_000_000


def brief(value: object, limit: int = 60) -> str:
    """repr() of a client's value for an error message, cut short: a 5 MB key is not echoed back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def check_locale(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        babel.Locale.parse(value.replace("-", "_"))
    except (ValueError, babel.UnknownLocaleError) as exc:
        raise ValueError(f"{brief(value)} is not a known locale; use a code such as en_US, de_DE or ja_JP") from exc
    return value.replace("-", "_")


def check_column_types(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for column, kind in value.items():
        if kind not in VALID_TYPE_NAMES:
            raise ValueError(f"column {brief(column)}: {brief(kind)} is not a type; valid types are {', '.join(VALID_TYPE_NAMES)}")
    return value


class PdfIn(Camel):
    page_size: str | None = Field(None, description=f"One of {', '.join(PAGE_SIZES_IN)}; default: width×height")
    landscape: bool = False
    margin_mm: float = Field(0.0, ge=0, le=100)

    @field_validator("page_size")
    @classmethod
    def known_size(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in PAGE_SIZES_IN:
            raise ValueError(f"{brief(value)} is not a page size; valid sizes are {', '.join(PAGE_SIZES_IN)}")
        return value.lower() if value else None


class TemplateIn(Camel):
    name: str = Field(min_length=1, max_length=200)
    html: str = Field(min_length=1, max_length=MAX_HTML)
    css: str = Field("", max_length=MAX_CSS)
    width: int = Field(1200, ge=1, le=10_000)
    height: int = Field(630, ge=1, le=10_000)
    format: Format = "png"
    quality: int = Field(90, ge=1, le=100)
    scale: float = Field(1.0, ge=1, le=4)
    locale: str | None = Field(None, max_length=40)
    sample_data: dict[str, Any] | None = None
    column_types: dict[str, str] = Field(default_factory=dict)
    pdf: PdfIn | None = None

    _locale = field_validator("locale")(classmethod(lambda cls, v: check_locale(v)))
    _types = field_validator("column_types")(classmethod(lambda cls, v: check_column_types(v)))


class TemplateUpdate(Camel):
    name: str | None = Field(None, min_length=1, max_length=200)
    html: str | None = Field(None, min_length=1, max_length=MAX_HTML)
    css: str | None = Field(None, max_length=MAX_CSS)
    width: int | None = Field(None, ge=1, le=10_000)
    height: int | None = Field(None, ge=1, le=10_000)
    format: Format | None = None
    quality: int | None = Field(None, ge=1, le=100)
    scale: float | None = Field(None, ge=1, le=4)
    locale: str | None = Field(None, max_length=40)
    sample_data: dict[str, Any] | None = None
    column_types: dict[str, str] | None = None
    pdf: PdfIn | None = None

    _locale = field_validator("locale")(classmethod(lambda cls, v: check_locale(v)))
    _types = field_validator("column_types")(classmethod(lambda cls, v: check_column_types(v)))


class TemplateOut(Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    uid: str
    name: str
    version: int
    html: str
    css: str
    width: int
    height: int
    format: str
    quality: int
    scale: float
    locale: str | None
    sample_data: dict[str, Any] | None
    column_types: dict[str, str]
    pdf: dict[str, Any]
    assets: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class RenderOverrides(Camel):
    format: Format | None = None
    quality: int | None = Field(None, ge=1, le=100)
    width: int | None = Field(None, ge=1, le=10_000)
    height: int | None = Field(None, ge=1, le=10_000)
    scale: float | None = Field(None, ge=1, le=4)
    locale: str | None = Field(None, max_length=40)

    _locale = field_validator("locale")(classmethod(lambda cls, v: check_locale(v)))


class TemplateRenderIn(RenderOverrides):
    variables: dict[str, Any] = Field(default_factory=dict)


class ImageIn(Camel):
    html: str = Field(min_length=1, max_length=MAX_HTML)
    css: str = Field("", max_length=MAX_CSS)
    width: int = Field(1200, ge=1, le=10_000)
    height: int = Field(630, ge=1, le=10_000)
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    quality: int = Field(90, ge=1, le=100)
    scale: float = Field(1.0, ge=1, le=4)
    selector: str | None = Field(None, min_length=1, max_length=500)
    variables: dict[str, Any] = Field(default_factory=dict)


class PdfPageIn(Camel):
    """One page's source: raw HTML (with its CSS), or a stored template; with variables either way."""

    html: str | None = Field(None, min_length=1, max_length=MAX_HTML)
    css: str = Field("", max_length=MAX_CSS)
    template_uid: str | None = Field(None, max_length=60)
    variables: dict[str, Any] = Field(default_factory=dict)


class PdfLayoutIn(Camel):
    """Page layout overrides shared by /pdf/render and /pdf/multi-page."""

    width: int | None = Field(None, ge=1, le=10_000)
    height: int | None = Field(None, ge=1, le=10_000)
    page_size: str | None = None
    landscape: bool | None = None
    margin_mm: float | None = Field(None, ge=0, le=100)

    @field_validator("page_size")
    @classmethod
    def known_size(cls, value: str | None) -> str | None:
        return PdfIn.known_size(value)  # type: ignore[call-arg]


class PdfRenderIn(PdfLayoutIn, PdfPageIn):  # fields in this order: the page's source, then its layout
    pass


class PdfPagesIn(Camel):
    pages: list[PdfPageIn] = Field(min_length=1, max_length=500)


class MultiPageIn(PdfLayoutIn, PdfPagesIn):  # fields in this order: the pages, then their layout
    pass


class RenderOut(Camel):
    url: str
    width: int
    height: int
    format: str
    bytes: int
    render_time_ms: int
    pages: int | None = None


class BatchOptions(RenderOverrides):
    concurrency: int = Field(5, ge=1, le=10)
    webhook_url: HttpUrl | None = None
    filename: str | None = Field(None, min_length=1, max_length=500)
    zip: bool = False


class BatchRenderIn(BatchOptions):
    variable_sets: list[dict[str, Any]]


class BatchAccepted(Camel):
    batch_id: str
    status: BatchStatus
    total_items: int
    message: str
