"""Pipe precedence: a trailing run of filters in ``{{ … }}`` or ``{% set x = … %}`` applies to everything before it."""

from __future__ import annotations

import pytest
from jinja2.sandbox import SandboxedEnvironment

from pressrun.templating import Engine
from pressrun.templating.pipes import rewrite_pipes

REWRITES = [
    # (source, rewritten source)
    ("{{ price * 0.9 | currency }}", "{{ (price * 0.9) | currency }}"),
    ("a {{- price * 0.9 | currency -}} b", "a {{- (price * 0.9) | currency -}} b"),
    ("{{ a + b | round(2) | number }}", "{{ (a + b) | round(2) | number }}"),
    ("{{ a if b else c | upper }}", "{{ (a if b else c) | upper }}"),
    ("{{ x|e }}{{ y*2|string }}", "{{ (x)|e }}{{ (y*2)|string }}"),
    # only the trailing run of pure filter calls is the suffix; earlier pipes keep Jinja's precedence
    ("{{ items | map(attribute='p') | sum * 1.2 | currency }}",
     "{{ (items | map(attribute='p') | sum * 1.2) | currency }}"),
    ("{{ price | round * qty | currency }}", "{{ (price | round * qty) | currency }}"),
    ("{{ a | f | g(1, (2)) | h }}", "{{ (a) | f | g(1, (2)) | h }}"),
    # no filter suffix: plain Jinja, unchanged
    ("{{ 'many' if items | length > 1 else 'one' }}", "{{ 'many' if items | length > 1 else 'one' }}"),
    ("{{ x | f + 1 }}", "{{ x | f + 1 }}"),
    ("{{ x | f(1) + 1 }}", "{{ x | f(1) + 1 }}"),
    ("{{ x | a.b }}", "{{ x | a.b }}"),
    ("{{ x | }}", "{{ x | }}"),
    # {% set name = value %}: the value follows the same rule
    ("{% set t = price * 0.9 | currency %}", "{% set t = (price * 0.9) | currency %}"),
    ("{%- set ns.n = a * 2 | f -%}", "{%- set ns.n = (a * 2) | f -%}"),
    ("{% set t = a == b | f %}", "{% set t = (a == b) | f %}"),
    ("{% set t %}{{ a * b | f }}{% endset %}", "{% set t %}{{ (a * b) | f }}{% endset %}"),
    ("{% set t | upper %}x{% endset %}", "{% set t | upper %}x{% endset %}"),
    # no pipe: unchanged
    ("{{ price * 0.9 }}", "{{ price * 0.9 }}"),
    ("plain text | with a bar", "plain text | with a bar"),
    # pipes inside strings, brackets and braces are not top level
    ("{{ '|' ~ x }}", "{{ '|' ~ x }}"),
    ('{{ "a|b" | upper }}', '{{ ("a|b") | upper }}'),
    ("{{ f(a|b) }}", "{{ f(a|b) }}"),
    ("{{ [a|b, c] | join }}", "{{ ([a|b, c]) | join }}"),
    ("{{ {'k': a|b} | length }}", "{{ ({'k': a|b}) | length }}"),
    # only {{ }} blocks: statements, comments and raw blocks are left alone
    ("{% if a * 2 | abs %}{% endif %}", "{% if a * 2 | abs %}{% endif %}"),
    ("{# {{ a * b | f }} #}", "{# {{ a * b | f }} #}"),
    ("{% raw %}{{ a * b | f }}{% endraw %}", "{% raw %}{{ a * b | f }}{% endraw %}"),
    # an empty left side stays a syntax error instead of becoming an empty tuple
    ("{{ | f }}", "{{ | f }}"),
    # multi-line expressions keep their newlines where they were
    ("{{\n  price\n  * 2 | currency\n}}", "{{\n  (price\n  * 2) | currency\n}}"),
    ("{{ a * b | f }}\r\n{{ c | g }}", "{{ (a * b) | f }}\n{{ (c) | g }}"),
]


@pytest.mark.parametrize(("source", "expected"), REWRITES)
def test_rewrite_pipes(source: str, expected: str) -> None:
    assert rewrite_pipes(source, SandboxedEnvironment()) == expected


@pytest.mark.parametrize(("source", "_expected"), REWRITES)
def test_rewrite_adds_no_lines(source: str, _expected: str) -> None:
    rewritten = rewrite_pipes(source, SandboxedEnvironment())
    assert rewritten.count("\n") == source.replace("\r\n", "\n").count("\n")


RENDERS = [
    # (template, row, expected HTML)
    ("{{ price * 0.9 | currency }}", {"price": 100}, "$90.00"),
    ("{{ price * qty | currency('EUR') }}", {"price": 2.5, "qty": 3}, "€7.50"),
    ("{{ a + b | round(2) | number }}", {"a": 1, "b": 2.345}, "3.35"),
    ("[{{- price * 2 | number(1) -}}]", {"price": 1.5}, "[3.0]"),
    ("{{ first ~ ' ' ~ last | upper }}", {"first": "ada", "last": "lovelace"}, "ADA LOVELACE"),
    ("{{ 'a|b' | upper }}", {}, "A|B"),
    ("{{ items | map(attribute='n') | join('|') }}", {"items": [{"n": 1}, {"n": 2}]}, "1|2"),
    ("{% if n * 2 | string == '4' %}yes{% else %}no{% endif %}", {"n": 2}, "no"),  # {% %}: Jinja's precedence
    ("{{ items | map(attribute='price') | sum * 1.2 | currency }}", {"items": [{"price": 10}, {"price": 20}]},
     "$36.00"),
    ("{{ price | round * qty | currency }}", {"price": 10, "qty": 2}, "$20.00"),
    ("{{ 'many' if items | length > 1 else 'one' }}", {"items": [1, 2]}, "many"),
    ("{{ 'many' if items | length > 1 else 'one' }}", {"items": [1]}, "one"),
    ("{% set t = price * 0.9 | currency %}{{ t }}", {"price": 100}, "$90.00"),
    ("{{ a ~ b | upper }}", {"a": "x", "b": "y"}, "XY"),
]


@pytest.mark.parametrize(("template", "row", "expected"), RENDERS)
def test_pipe_binds_loosest_when_rendering(template: str, row: dict, expected: str) -> None:
    assert Engine().compile(template).render(row) == expected
