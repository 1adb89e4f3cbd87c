"""Template bundles on disk: a single ``.html`` file, or a folder with

- ``template.html``  the template (required)
- ``style.css``      optional stylesheet, linked into the document's ``<head>``
- ``assets/``        optional images and fonts, referenced by relative URLs
- ``pressrun.toml``  optional manifest: name, width, height, format, quality, scale, locale,
                     ``[pdf]`` page_size/landscape/margin_mm, ``[columns]`` types, ``[[sample]]`` rows

and :func:`build_document`, which turns a row's rendered HTML into the full document Chromium loads.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pressrun.data.types import VALID_TYPE_NAMES, parse_column_types
from pressrun.errors import DataError, TemplateError, UsageError
from pressrun.models import OutputFormat, PdfOptions
from pressrun.options import TemplateDefaults

MANIFEST_NAME = "pressrun.toml"
TEMPLATE_NAME = "template.html"
STYLESHEET_NAME = "style.css"
MANIFEST_KEYS = {"name", "width", "height", "format", "quality", "scale", "locale", "pdf", "columns", "sample"}

BASE_STYLE = "<style>html,body{margin:0;padding:0}</style>"
# Where a <head ...> / <html ...> start tag begins. The tag ends at the first ">" after it.
HEAD_START = re.compile(r"<head[\s>]", re.IGNORECASE)
HTML_START = re.compile(r"<html[\s>]", re.IGNORECASE)


@dataclass(frozen=True)
class Manifest:
    name: str
    defaults: TemplateDefaults = field(default_factory=TemplateDefaults)  # size, format, quality, locale, [pdf]
    column_types: dict[str, str] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TemplateBundle:
    source: str
    source_name: str  # the file name used in error messages
    asset_root: Path
    has_stylesheet: bool
    manifest: Manifest


def load_template(path: str | Path) -> TemplateBundle:
    """Read a template file or folder. Raises TemplateError naming the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        html_path = path / TEMPLATE_NAME
        if not html_path.is_file():
            raise TemplateError(f"{path}: a template folder needs a {TEMPLATE_NAME} file", file=str(path))
        manifest = read_manifest(path / MANIFEST_NAME, default_name=path.name)
        has_css = (path / STYLESHEET_NAME).is_file()
        root = path
    elif path.is_file():
        if path.suffix.lower() not in (".html", ".htm"):
            raise TemplateError(
                f"{path}: a template is an .html file or a folder with {TEMPLATE_NAME}", file=str(path)
            )
        html_path, root, has_css = path, path.parent, False
        manifest = Manifest(name=path.stem)
    else:
        raise TemplateError(f"{path}: no such template file or folder", file=str(path))
    try:
        source = html_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{html_path.name}: not valid UTF-8 ({exc.reason})", file=html_path.name) from exc
    return TemplateBundle(source, html_path.name, root, has_css, manifest)


def read_manifest(path: Path, *, default_name: str) -> Manifest:
    if not path.is_file():
        return Manifest(name=default_name)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path.name}: {exc}", file=path.name) from exc
    return parse_manifest(raw, default_name=default_name, file_name=path.name)


def parse_manifest(raw: dict[str, Any], *, default_name: str, file_name: str = MANIFEST_NAME) -> Manifest:
    def fail(key: str, value: Any, valid: str) -> TemplateError:
        return TemplateError(
            f"{file_name}: {key} = {value!r} is not valid; expected {valid}", file=file_name, field=key, value=value
        )

    unknown = sorted(set(raw) - MANIFEST_KEYS)
    if unknown:
        raise fail(unknown[0], raw[unknown[0]], f"one of the keys {', '.join(sorted(MANIFEST_KEYS))}")

    def integer(key: str, default: int, low: int, high: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise fail(key, value, f"an integer from {low} to {high}")
        return value

    scale = raw.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 1 <= scale <= 4:
        raise fail("scale", scale, "a number from 1 to 4")
    try:
        fmt = OutputFormat.parse(raw.get("format", "png"))
    except Exception as exc:
        raise fail("format", raw.get("format"), ", ".join(f.value for f in OutputFormat)) from exc
    columns = parse_columns(raw.get("columns", {}), fail)
    sample = raw.get("sample", [])
    if isinstance(sample, dict):
        sample = [sample]
    if not isinstance(sample, list) or not all(isinstance(s, dict) for s in sample):
        raise fail("sample", sample, "a table or an array of tables ([[sample]])")
    locale = raw.get("locale")
    if locale is not None:
        from pressrun.templating.filters import parse_locale

        try:
            parse_locale(locale if isinstance(locale, str) else "")
        except UsageError as exc:
            raise fail("locale", locale, 'a known locale name such as "en_US" or "de_DE"') from exc
    defaults = TemplateDefaults(
        width_px=integer("width", 1200, 1, 10_000),
        height_px=integer("height", 630, 1, 10_000),
        format=fmt,
        quality=integer("quality", 90, 1, 100),
        scale=float(scale),
        locale=locale,
        pdf=parse_pdf_options(raw.get("pdf", {}), fail),
    )
    return Manifest(
        name=str(raw.get("name", default_name)),
        defaults=defaults,
        column_types=columns,
        sample=sample,
    )


def parse_columns(raw: Any, fail: Any) -> dict[str, str]:
    """``[columns]`` -> ``{dotted column: type}``. TOML reads ``customer.age = "integer"`` as a nested
    table; it is the nested column ``customer.age``, as a quoted ``"customer.age"`` key is."""
    if not isinstance(raw, dict):
        raise fail("columns", raw, 'a table of column = "type"')
    flat: dict[str, str] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            column = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{column}.")
                continue
            try:
                parse_column_types({column: value if isinstance(value, str) else ""}, file=MANIFEST_NAME)
            except DataError as exc:
                valid = f"one of the types {', '.join(VALID_TYPE_NAMES)} (aliases: str, float, int, bool)"
                raise fail(f"columns.{column}", value, valid) from exc
            flat[column] = value

    walk(raw, "")
    return flat


def parse_pdf_options(raw: Any, fail: Any) -> PdfOptions:
    """``[pdf]`` -> PdfOptions, through the one converter (PdfOptions.from_dict); its complaint is
    re-said in the manifest's terms (file, key, value, what is valid)."""
    try:
        return PdfOptions.from_dict(raw)
    except UsageError as exc:
        raise fail(exc.details["field"], exc.details.get("value", raw), exc.details["valid"]) from exc


def build_document(body_html: str, *, stylesheet: bool, css: str | None = None) -> str:
    """Wrap a row's rendered HTML into a full document with the base style and the template's CSS.

    A template may be a whole document (``<html><head>…``) or a fragment; both work. The base style
    goes first so the template's own CSS can override it.
    """
    head_extra = BASE_STYLE + ('<link rel="stylesheet" href="style.css">' if stylesheet else "")
    if css:  # templates stored by the API carry their CSS inline; the same for every row
        head_extra += f"<style>{css}</style>"
    end = tag_end(HEAD_START, body_html)
    if end is not None:
        return body_html[:end] + head_extra + body_html[end:]
    end = tag_end(HTML_START, body_html)
    if end is not None:
        return body_html[:end] + f"<head>{head_extra}</head>" + body_html[end:]
    return f'<!doctype html><html><head><meta charset="utf-8">{head_extra}</head><body>{body_html}</body></html>'


def tag_end(start: re.Pattern[str], html: str) -> int | None:
    """Where the first start tag found by ``start`` ends (after its ">"), or None. Linear in the
    length of ``html``: a regex for the whole tag backtracks over every unclosed ``<head `` in turn,
    and a row rendering ``'<head ' * 200000`` took minutes. Only the first candidate can be the answer:
    a later tag's closing ">" would also close the first."""
    found = start.search(html)
    if found is None:
        return None
    close = html.find(">", found.start())
    return None if close < 0 else close + 1
