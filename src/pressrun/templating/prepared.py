"""Templates ready for rows, and where they come from.

A :class:`PreparedTemplate` is everything the item pipeline needs of a template: its compiled source
(rendering in the isolated engine's child processes, or in this process for ``preview``), how its
document is put together (an inline stylesheet for stored templates, a linked ``style.css`` for
template folders), the folder its assets load from, its column types and its output defaults.

It is made from a template folder (:func:`prepare_bundle`, the CLI), from a stored template version
(:class:`TemplateCache`, the API and the dispatcher; a version never changes once written, so it is
compiled once), or directly from the raw HTML and CSS of a request (``/image``, ``/pdf/render``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pressrun.data.types import ColumnType, apply_column_types, parse_column_types
from pressrun.errors import PressrunError
from pressrun.options import TemplateDefaults
from pressrun.templating.bundle import MANIFEST_NAME, TemplateBundle, build_document


class RowTemplate(Protocol):
    """A compiled template: the isolated engine's (child processes) or the in-process engine's."""

    def render(self, row: Mapping[str, Any], *, locale: str | None = None) -> str: ...

    def variables(self) -> list[str]: ...


class TemplateCompiler(Protocol):
    def compile(self, source: str, *, name: str = "template.html") -> RowTemplate: ...


@dataclass(frozen=True)
class PreparedTemplate:
    template: RowTemplate
    defaults: TemplateDefaults = field(default_factory=TemplateDefaults)
    column_types: Mapping[str, ColumnType] = field(default_factory=dict)
    css: str = ""  # inline stylesheet (stored templates), the same for every row
    stylesheet: bool = False  # link the folder's style.css (template folders)
    asset_root: Path | None = None  # where relative URLs (images, fonts) load from; None: nothing loads
    uid: str | None = None  # a stored template's uid

    def typed(self, values: dict[str, Any]) -> dict[str, Any]:
        """Apply the template's column types in place (CSV strings → numbers, dates…); raises the row's
        InvalidValueError naming the column, the value and the type expected."""
        if self.column_types:
            error = apply_column_types(values, self.column_types)
            if error is not None:
                raise error
        return values

    def document(self, body_html: str) -> str:
        """A row's rendered HTML as the full document Chromium loads."""
        return build_document(body_html, stylesheet=self.stylesheet, css=self.css)


def prepare_bundle(bundle: TemplateBundle, engine: TemplateCompiler) -> PreparedTemplate:
    """A template folder (or a single .html file) as the CLI renders it."""
    return PreparedTemplate(
        template=engine.compile(bundle.source, name=bundle.source_name),
        defaults=bundle.manifest.defaults,
        column_types=parse_column_types(bundle.manifest.column_types, file=MANIFEST_NAME),
        stylesheet=bundle.has_stylesheet,
        asset_root=bundle.asset_root,
    )


def prepare_stored(version: Any, engine: TemplateCompiler, asset_root: Path) -> PreparedTemplate:
    """A stored template version (a row with uid, html, css, pdf, column_types and the output fields)."""
    return PreparedTemplate(
        template=engine.compile(version.html, name="template.html"),
        defaults=TemplateDefaults.of_stored(version),
        column_types=parse_column_types(version.column_types or {}, file="columnTypes"),
        css=version.css or "",
        asset_root=asset_root,
        uid=version.uid,
    )


def asset_folder_key(template_uid: str) -> str:
    """The storage key of a stored template's folder: its document's relative URLs resolve against it."""
    return f"templates/{template_uid}"


def asset_key(template_uid: str, name: str) -> str:
    """Where an uploaded asset is stored: the template's HTML uses it as ``assets/<name>``."""
    return f"{asset_folder_key(template_uid)}/assets/{name}"


class TemplateCache:
    """Prepared template versions by (template id, version), and compiled file-name patterns.

    ``load(template_id, version)`` reads a version (None when it is missing); ``asset_root(uid)`` is the
    folder a template's assets are stored in. Both are handed in by the service: this layer does no I/O
    of its own. Called from worker threads (the API's and the dispatcher's), hence the lock."""

    def __init__(self, load: Callable[[int, int], Any], engine: TemplateCompiler, asset_root: Callable[[str], Path],
                 size: int = 64) -> None:
        self.load, self.engine, self.asset_root, self.size = load, engine, asset_root, size
        self._versions: dict[tuple[int, int], PreparedTemplate] = {}
        self._patterns: dict[str, RowTemplate] = {}
        self._lock = threading.Lock()

    def get(self, template_id: int, version: int) -> PreparedTemplate:
        with self._lock:
            found = self._versions.get((template_id, version))
            if found is None:
                row = self.load(template_id, version)
                if row is None:
                    raise PressrunError(f"version {version} of template {template_id} is missing")
                found = prepare_stored(row, self.engine, self.asset_root(row.uid))
                remember(self._versions, (template_id, version), found, self.size)
            return found

    def filename_pattern(self, pattern: str) -> RowTemplate:
        with self._lock:
            compiled = self._patterns.get(pattern)
            if compiled is None:
                compiled = self.engine.compile(pattern, name="filename")
                remember(self._patterns, pattern, compiled, self.size)
            return compiled


def remember(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Insert, dropping the oldest entry past ``size``."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value
