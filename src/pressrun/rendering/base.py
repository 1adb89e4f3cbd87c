"""The renderer role: what the runner, the dispatcher, the API and the service ask of a renderer.

:class:`~pressrun.rendering.pool.ChromiumRenderer` is the real one; :class:`~pressrun.rendering.fake.FakeRenderer`
stands in for it in fast tests of the layers above rendering. Diagnostics that only Chromium has
(``restarts``, ``browser_pid``) are not part of the role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from pressrun.models import RenderOptions, RenderResult


@runtime_checkable
class Renderer(Protocol):
    """Documents in, files out. Started once (``start`` or ``async with``), shared by every caller,
    closed once."""

    concurrency: int
    """Renders it runs at once; callers size their queues and claims by it."""

    async def start(self) -> None:
        """Get ready to render; raises BrowserUnavailableError when it cannot."""

    async def close(self) -> None:
        """Stop rendering and release what ``start`` acquired."""

    async def __aenter__(self) -> Self:
        """``start()``, then the renderer itself."""

    async def __aexit__(self, *exc_info: object) -> None:
        """``close()``."""

    def is_connected(self) -> bool:
        """Whether it can render right now (the service's readiness probe)."""

    async def render(self, html: str, options: RenderOptions, *, asset_root: Path | None = None) -> RenderResult:
        """Render one document; ``asset_root`` is the folder its relative URLs load from. Raises RowError
        subclasses for what fails this row only, BrowserUnavailableError when nothing can render."""
