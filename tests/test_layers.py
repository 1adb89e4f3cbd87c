"""The package's layers, as docs/architecture.md draws them: no import cycles, and no import that runs
back up (a route reaching into the dispatcher, the service into the CLI runner, templating into the
database). Module-level imports only: an import inside a function is a deliberate, lazy one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pressrun"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path) for path in PACKAGE.rglob("*.py")}


def imports(path: Path, *, lazy: bool) -> set[str]:
    """pressrun modules imported at module level (not under TYPE_CHECKING), and with ``lazy`` also
    those imported inside functions."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree)) if lazy else tree.body
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    for node in nodes:
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("pressrun"):
            # ``from pressrun.api import problems`` imports the submodule pressrun.api.problems.
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                         for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pressrun"))
    return found


SOURCES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}
GRAPH = {module: imports(path, lazy=False) for module, path in SOURCES.items()}
# Lazy imports too: an import inside a function still makes the two modules depend on each other.
ALL_IMPORTS = {module: imports(path, lazy=True) for module, path in SOURCES.items()}


def importers_of(prefix: str) -> set[str]:
    return {module for module, imports in GRAPH.items()
            if any(target == prefix or target.startswith(prefix + ".") for target in imports)}


def test_no_import_cycles():
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        for target in sorted(ALL_IMPORTS.get(module, ())):
            # Importing a package's submodule runs the package's __init__ first, not the reverse.
            if target in stack and not module.startswith(target + "."):
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target in ALL_IMPORTS and target not in done and target not in stack:
                visit(target, [*stack, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(GRAPH):
        visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("pressrun.templating", "pressrun.db"),
        ("pressrun.templating", "pressrun.api"),
        ("pressrun.templating", "pressrun.jobs"),
        ("pressrun.templating", "pressrun.service"),
        ("pressrun.pipeline", "pressrun.db"),
        ("pressrun.pipeline", "pressrun.api"),
        ("pressrun.options", "pressrun.templating"),
        ("pressrun.models", "pressrun.templating"),
        ("pressrun.db", "pressrun.api"),
        ("pressrun.db", "pressrun.service"),
        ("pressrun.db", "pressrun.webhooks"),
        ("pressrun.service", "pressrun.runner"),
        ("pressrun.service", "pressrun.cli"),
        ("pressrun.api", "pressrun.jobs.dispatcher"),
        ("pressrun.api", "pressrun.runner"),
        ("pressrun.jobs", "pressrun.api"),
        ("pressrun.rendering", "pressrun.api"),
        ("pressrun.rendering", "pressrun.db"),
    ],
)
def test_no_import_runs_back_up(lower, higher):
    offenders = {module for module in importers_of(higher)
                 if module == lower or module.startswith(lower + ".")}
    assert offenders == set(), f"{lower} must not import {higher}"


def test_every_path_that_renders_a_row_goes_through_the_pipeline():
    callers = importers_of("pressrun.pipeline")
    assert {"pressrun.runner", "pressrun.jobs.dispatcher", "pressrun.api.routes.renders"} <= callers
    # ... and nothing else drives the renderer row by row around it.
    renderer_users = {module for module, path in SOURCES.items()
                      if "renderer.render(" in path.read_text(encoding="utf-8")}
    assert renderer_users <= {"pressrun.pipeline"}, renderer_users


def test_routes_leave_waking_background_loops_to_the_service():
    waking = {module for module, path in SOURCES.items()
              if module.startswith("pressrun.api") and ".wake()" in path.read_text(encoding="utf-8")}
    assert waking == set()
