"""Templates: the sandboxed expression engine (template source + row -> HTML, pure: engine.py, filters,
pipes, variables), its confined child processes (isolation.py, confine.py), template folders and their
manifests (bundle.py), and templates prepared for the item pipeline (prepared.py, engines.py)."""

from pressrun.templating.engine import CompiledTemplate, Engine

__all__ = ["CompiledTemplate", "Engine"]
