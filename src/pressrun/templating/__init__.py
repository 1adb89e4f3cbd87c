"""The sandboxed expression engine: template source + row -> HTML string. Pure (no I/O)."""

from pressrun.templating.engine import CompiledTemplate, Engine

__all__ = ["CompiledTemplate", "Engine"]
