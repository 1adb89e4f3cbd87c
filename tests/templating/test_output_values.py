"""What ``{{ … }}`` prints: only data. Functions, types and template objects fail the row instead of
printing a Python repr (which leaks internals and memory addresses)."""

from __future__ import annotations

import pytest

from pressrun.errors import ExpressionError, MissingVariableError
from pressrun.templating import Engine

ROW = {"order": {}, "name": "ada", "items": ["a", "b"], "d": {"k": 1}}

MISSING_KEYS = [
    # (template, variable) — a dict method found where the row has no such key is a missing key
    ("{{ order.items }}", "order.items"),
    ("{{ order.get }}", "order.get"),
    ("{{ order.items | upper }}", "order.items"),
    ("{{ order.items ~ '!' }}", "order.items"),
    ("{{ order.values | currency }}", "order.values"),
]


@pytest.mark.parametrize(("template", "variable"), MISSING_KEYS)
def test_dict_method_in_place_of_a_missing_key(template: str, variable: str) -> None:
    with pytest.raises(MissingVariableError) as caught:
        Engine().compile(template).render(ROW)
    assert caught.value.message == f"missing variable '{variable}'"
    assert caught.value.details["variable"] == variable
    assert Engine(strict=False).compile(f"[{template}]").render(ROW) == "[]"


def test_default_replaces_a_dict_method_in_place_of_a_missing_key() -> None:
    assert Engine().compile("{{ order.items | default('none') }}").render(ROW) == "none"


NOT_VALUES = [
    # (template, start of the message after "template.html line 1: ")
    ("{{ dict }}", "'dict' is a type, not a value"),
    ("{{ cycler }}", "'Cycler' is a type, not a value"),
    ("{{ range }}", "'range' is a function, not a value; to call it, write range(…)"),
    ("{{ self }}", "a TemplateReference is a template object, not a value"),
    ("{{ namespace(a=1) }}", "a Namespace is a template object, not a value"),
    ("{{ joiner() }}", "a Joiner is a template object, not a value"),
    ("{% macro m() %}{% endmacro %}{{ m }}", "'m' is a function, not a value; to call it, write m(…)"),
    ("{{ name.upper }}", "'upper' is a method of str, not a value; to call it, write upper()"),
    ("{{ [dict] }}", "'dict' is a type, not a value"),
    ("{{ {'k': range} }}", "'range' is a function"),
    ("{{ items | map('upper') }}", "a generator (from range() or a filter such as map or select) is not a value; "
                                   "add | list or | join(', ')"),
    ("{{ range(3) }}", "a range (from range()"),
    ("{{ dict ~ 'x' }}", "'dict' is a type, not a value"),
    ("{{ dict | upper }}", "'dict' is a type, not a value"),
]


@pytest.mark.parametrize(("template", "message"), NOT_VALUES)
def test_non_values_are_not_printed(template: str, message: str) -> None:
    for engine in (Engine(), Engine(strict=False)):
        with pytest.raises(ExpressionError) as caught:
            engine.compile(template).render(ROW)
        assert caught.value.message.startswith(f"template.html line 1: {message}")
        assert "0x" not in caught.value.message


STILL_WORKS = [
    ("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}", "k=1"),
    ("{{ name.upper() }}", "ADA"),
    ("{{ items | map('upper') | join(',') }}", "A,B"),
    ("{{ range(3) | list }}", "[0, 1, 2]"),
    ("{{ items }}|{{ d }}", "[&#39;a&#39;, &#39;b&#39;]|{&#39;k&#39;: 1}"),
    ("{% set ns = namespace(n=2) %}{{ ns.n }}", "2"),
    ("{% macro m() %}M{% endmacro %}{{ m() }}", "M"),
]


@pytest.mark.parametrize(("template", "expected"), STILL_WORKS)
def test_calls_and_data_still_print(template: str, expected: str) -> None:
    assert Engine().compile(template).render(ROW) == expected
