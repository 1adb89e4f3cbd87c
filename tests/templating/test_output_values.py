"""What ``{{ … }}`` prints: only data. Functions, types and template objects fail the row instead of
printing a Python repr (which leaks internals and memory addresses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pressrun.errors import ExpressionError, MissingVariableError
from pressrun.templating import Engine
from pressrun.templating.variables import TICK_EVERY_VALUES, check_printable

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


MADE_TEXT = [
    # (template, start of the message after "template.html line 1: ") — each once printed an address
    ('{{ "%s" % range }}', "'range' is a function"),
    ('{{ "%s" % (range,) }}', "'range' is a function"),
    ('{{ "%(a)s" % {"a": cycler} }}', "'Cycler' is a type"),
    ('{{ ("%s"|safe) % [range] }}', "'range' is a function"),
    ("{{ [range]|join }}", "'range' is a function"),
    ("{{ [range]|join(', ') }}", "'range' is a function"),
    ("{{ [1, 2]|join(range) }}", "'range' is a function"),
    ("{{ [range]|select|join }}", "'range' is a function"),
    ("{{ [range]|string }}", "'range' is a function"),
    ("{{ ([range]|string)[0:10] }}", "'range' is a function"),
    ("{{ [range]|pprint }}", "'range' is a function"),
    ("{{ [range]|tojson }}", "'range' is a function"),
    ("{{ [range]|upper }}", "'range' is a function"),
    ("{{ [range]|e }}", "'range' is a function"),
    ("{{ [range]|safe }}", "'range' is a function"),
    ("{{ {'a': range}|xmlattr }}", "'range' is a function"),
    ("{{ [('a', range)]|urlencode }}", "'range' is a function"),
    ("{{ 'a'|replace('a', [range]) }}", "'range' is a function"),
    ("{{ '%s'|format(range) }}", "'range' is a function"),
    ("{{ [range]|map('string')|list }}", "'range' is a function"),
    ("{{ range(3)|string }}", "a range (from range()"),
    ('{{ "{}".format(cycler) }}', "'Cycler' is a type"),
    ('{{ "{0[0]}".format([range]) }}', "'range' is a function"),
    ('{{ "{0!r}".format(range) }}', "'range' is a function"),
    ('{{ "{0.upper}".format("x") }}', "'upper' is a method of str"),
    ('{{ "{a}".format_map({"a": joiner()}) }}', "a Joiner is a template object"),
    ('{{ ("{}"|safe).format(range) }}', "'range' is a function"),
    ("{{ ('-'|safe).join([range]) }}", "'range' is a function"),
    ("{{ ('-'|safe).join([range]|select) }}", "'range' is a function"),
    ("{{ ('x'|safe).replace('x', range) }}", "'range' is a function"),
    ("{{ {'a': range}.items() }}", "'range' is a function"),
    ("{{ [range] + [0] * 100001 }}", "'range' is a function"),
    ("{{ [0] * 100001 + [range] }}", "'range' is a function"),
    ("{{ ([0] * 100001 + [range])|join }}", "'range' is a function"),
    ("{% set a = [0] * 1000 %}{% set b = [a] * 1000 %}{{ [b, [range]] }}", "'range' is a function"),
    ("{{ [range] ~ '' }}", "'range' is a function"),
]


@pytest.mark.parametrize(("template", "message"), MADE_TEXT)
def test_non_values_are_not_made_text(template: str, message: str) -> None:
    for engine in (Engine(), Engine(strict=False)):
        with pytest.raises(ExpressionError) as caught:
            engine.compile(template).render(ROW)
        assert caught.value.message.startswith(f"template.html line 1: {message}")
        assert "0x" not in caught.value.message


STILL_MADE_TEXT = [
    ("{{ items|join(', ') }}", "a, b"),
    ("{{ items|map('upper')|join(', ') }}", "A, B"),
    ("{{ range(3)|join }}", "012"),
    ("{{ '-'.join(items|map('upper')) }}", "A-B"),
    ("{{ ('-'|safe).join(items) }}", "a-b"),
    ('{{ "%s/%s" % (name, 2) }}', "ada/2"),
    ('{{ "{}:{k}".format(name, k=d.k) }}', "ada:1"),
    ('{{ "{0[k]}".format(d) }}', "1"),
    ("{{ d|tojson }}", '{"k": 1}'),
    ("{{ d.items()|list }}", "[(&#39;k&#39;, 1)]"),
    ("{{ ([0] * 100001)|length }}", "100001"),
    ("{{ items|string }}", "[&#39;a&#39;, &#39;b&#39;]"),
]


@pytest.mark.parametrize(("template", "expected"), STILL_MADE_TEXT)
def test_data_is_still_made_text(template: str, expected: str) -> None:
    assert Engine().compile(template).render(ROW) == expected


class TooManyValues(Exception):
    pass


def ticks_for(most_values: int) -> Callable[[], None]:
    """A tick for check_printable, which calls it every TICK_EVERY_VALUES values it visits, that stops
    the check once it is called more often than visiting ``most_values`` values needs: a check that
    went through a shared container twice, or round a cycle, fails at once instead of running for
    minutes or forever."""
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks > most_values // TICK_EVERY_VALUES:
            raise TooManyValues(f"visited more than {most_values} values")

    return tick


def test_shared_and_cyclic_containers_are_checked_once_each() -> None:
    """No budget, so no way around the check by size; and no way to make it loop or take long.

    Counted, not timed: visiting each distinct container once takes no more ticks than its values
    need (here none: 3,010 values at most, a tick every 10,000); a revisit of the shared list would
    add a million values, and a cycle would never end."""
    shared = [[[1] * 1000] * 1000] * 1000  # a billion values, in 3 distinct lists of 1,000
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    check_printable(shared, ticks_for(3 * 1000))
    check_printable(cyclic, ticks_for(2))
    check_printable({"a": cyclic, "b": [shared, {"k": cyclic}]}, ticks_for(4 + 2 + 2 + 3 * 1000 + 2))
    with pytest.raises(ExpressionError, match="'len' is a function"):
        check_printable([shared, cyclic, {"k": [len]}], ticks_for(3 + 3 * 1000 + 2 + 2 + 1))


def test_dict_views_are_checked_item_by_item() -> None:
    """d.items() makes new pairs as it goes: a freed pair's id must not hide the next one."""
    with pytest.raises(ExpressionError, match="'len' is a function"):
        check_printable({str(key): len for key in range(1000)}.items())


def test_a_long_check_keeps_the_deadline() -> None:
    ticks: list[int] = []
    check_printable([[0] * 25_000, [0] * 25_000], lambda: ticks.append(1))
    assert len(ticks) >= 4


def test_messages_name_template_objects_without_their_address() -> None:
    with pytest.raises(MissingVariableError) as caught:
        Engine().compile("{% set c = cycler(1) %}{{ c.nope }}").render(ROW)
    assert caught.value.message == "template.html line 1: <jinja2.utils.Cycler object> has no key or attribute 'nope'"
