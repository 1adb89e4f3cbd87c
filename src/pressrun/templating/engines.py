"""The engine factories: settings → the expression engine that renders rows.

Two kinds, one configuration: :func:`make_isolated_engine` renders in confined child processes under
hard time and memory limits (every batch, every request: templates are untrusted), and
:func:`make_engine` renders in this process (``preview`` and ``variables``: a template author's own
work, on their own machine).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from pressrun.templating.isolation import EngineConfig, IsolatedEngine

if TYPE_CHECKING:
    from pressrun.settings import Settings
    from pressrun.templating.engine import Engine


def engine_config(settings: Settings) -> EngineConfig:
    t = settings.templating
    return EngineConfig(locale=t.locale, strict=t.strict, timeout_s=t.timeout_s, max_output_chars=t.max_output_chars)


def make_engine(settings: Settings) -> Engine:
    """An in-process engine, for one-off renders of a template author's own work (preview)."""
    from pressrun.templating.engine import Engine  # Jinja and Babel: imported where templates are used

    return Engine(**asdict(engine_config(settings)))


def make_isolated_engine(settings: Settings) -> IsolatedEngine:
    """An engine whose templates render in child processes under hard time and memory limits."""
    t = settings.templating
    return IsolatedEngine(engine_config(settings), processes=t.processes, memory_mb=t.memory_mb)
