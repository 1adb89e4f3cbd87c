"""Compiling a template runs none of its filters: Jinja's optimizer folded constant expressions at
compile time, so `{{ "<2,200 chars>" | qr }}` × 100 took 12 s of server CPU (compiling happens in the
server on every create, update, variables and render), and a 990k-character literal with
`wordwrap(1)` 15 s. Filters run when a row renders, inside the template processes' limits."""

from __future__ import annotations

import functools

import pytest

from pressrun.templating import Engine


@pytest.mark.parametrize(
    "source",
    [
        '{{ "' + "a" * 2200 + '" | qr }}',
        '{{ "' + "word " * 2000 + '" | wordwrap(1) }}',
        '{{ ("<b>" ~ "x" * 50) | upper | truncate(10) }}',
        "{{ 1234.5 | number(2) }}",
    ],
)
def test_no_filter_runs_while_compiling(source, monkeypatch):
    calls = []
    engine = Engine()
    for name, function in list(engine._env.filters.items()):
        def spy(*args, __name=name, __function=function, **kwargs):
            calls.append(__name)
            return __function(*args, **kwargs)

        # Jinja's marker for filters that take the context (or eval context) first must carry over.
        monkeypatch.setitem(engine._env.filters, name, functools.wraps(function)(spy))
    compiled = engine.compile(source)
    assert calls == []
    compiled.render({})  # and they do run when a row renders
    assert calls
