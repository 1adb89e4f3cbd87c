"""Network policy: what a render may load, decided where requests leave Chromium.

A render may load, by default, only
- the template's own files (served from its folder under :data:`TEMPLATE_ORIGIN`, never outside it), and
- ``data:`` URLs (Chromium resolves those without a request at all).

Everything else is refused unless its host is in ``render.allowed_hosts``. ``file:`` URLs are always
refused: the template's folder is reachable only through the template origin, which checks paths.
"""

from __future__ import annotations

import fnmatch
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

# A reserved TLD (RFC 2606) so the origin can never collide with a real host. Plain http, so that
# http:// assets from allowed hosts are not blocked or upgraded as mixed content.
TEMPLATE_ORIGIN = "http://template.pressrun.invalid"
TEMPLATE_HOST = "template.pressrun.invalid"


@dataclass(frozen=True)
class ServeAsset:
    path: Path | None  # None: inside the template origin but not found
    relative: str


@dataclass(frozen=True)
class PassThrough:
    """An allowed host: the request goes to the network as usual."""


@dataclass(frozen=True)
class Refuse:
    reason: str


Decision = ServeAsset | PassThrough | Refuse


@dataclass(frozen=True)
class NetworkPolicy:
    allowed_hosts: tuple[str, ...] = ()

    def decide(self, url: str, asset_root: Path | None) -> Decision:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "data":
            return PassThrough()
        if scheme in ("http", "https") and parts.hostname == TEMPLATE_HOST:
            return resolve_asset(unquote(parts.path), asset_root)
        if scheme not in ("http", "https"):
            return Refuse(f"{scheme}: URLs are not allowed in templates")
        if self.host_allowed(parts.hostname or "", parts.port):
            return PassThrough()
        return Refuse(f"host {parts.hostname!r} is not in render.allowed_hosts")

    def host_allowed(self, host: str, port: int | None) -> bool:
        host = host.lower()
        candidates = [host] if port is None else [f"{host}:{port}", host]
        return any(fnmatch.fnmatchcase(c, pattern) for pattern in self.allowed_hosts for c in candidates)


def resolve_asset(url_path: str, asset_root: Path | None) -> ServeAsset | Refuse:
    relative = url_path.lstrip("/")
    if asset_root is None:
        return ServeAsset(None, relative)
    root = asset_root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        return Refuse(f"{relative!r} is outside the template folder")
    if not candidate.is_file():
        return ServeAsset(None, relative)
    return ServeAsset(candidate, relative)


def content_type_for(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed:
        return guessed
    return {
        ".woff2": "font/woff2",
        ".woff": "font/woff",
        ".ttf": "font/ttf",
        ".otf": "font/otf",
        ".svg": "image/svg+xml",
        ".webp": "image/webp",
    }.get(path.suffix.lower(), "application/octet-stream")
