"""``CompiledTemplate.variables()``: the row paths a template reads, found without rendering."""

from __future__ import annotations

import pytest

from pressrun.templating import Engine

VARIABLES = [
    # (template, expected sorted paths)
    ("{{ name }}", ["name"]),
    ("Hello", []),
    ("{{ user.address.city }}", ["user.address.city"]),
    ("{{ user['address']['city'] }}", ["user.address.city"]),
    ("{% for it in items %}{{ it.name }}{% endfor %}", ["items", "items[].name"]),
    ("{{ items[0].name }}", ["items[].name"]),
    ("{{ items[-1].name }}", ["items[].name"]),
    ("{{ items[i].name }}", ["i", "items[].name"]),
    ("{{ items[0] }}", ["items"]),
    ("{% for it in items %}{{ it }}{% endfor %}", ["items"]),
    ("{% for it in items[1:] %}{{ it.name }}{% endfor %}", ["items", "items[].name"]),
    ("{% for it in items | sort(attribute='n') %}{{ it.name }}{% endfor %}", ["items", "items[].name"]),
    ("{% for it in items if it.ok %}{{ it.name }}{% endfor %}", ["items", "items[].name", "items[].ok"]),
    ("{% for row in table %}{% for cell in row.cells %}{{ cell.text }}{% endfor %}{% endfor %}",
     ["table", "table[].cells", "table[].cells[].text"]),
    ("{% for it in items %}{{ loop.index }}{% else %}{{ empty_text }}{% endfor %}", ["empty_text", "items"]),
    ("{% for k, v in pairs %}{{ k }}{{ v.x }}{% endfor %}", ["pairs"]),
    ("{% for k, v in mapping.items() %}{{ k }}{% endfor %}", ["mapping"]),
    # filters and their arguments
    ("{{ price * qty | currency(code) }}", ["code", "price", "qty"]),
    ("{{ nickname | default(name) }}", ["name", "nickname"]),
    ("{% if x is defined %}{{ x }}{% endif %}", ["x"]),
    ("{% if a and b.c %}{{ d }}{% elif e %}{% endif %}", ["a", "b.c", "d", "e"]),
    # global functions are not variables; their arguments are
    ("{{ currency(total, 'EUR') }}{{ range(n) | join }}", ["n", "total"]),
    ("{{ date(order.date, 'long') }}", ["order.date"]),
    ("{{ date }}", ["date"]),  # a column named like a function, used as a value
    # method calls read the object
    ("{{ name.upper() }}", ["name"]),
    # set / with locals are not variables; aliases of plain lookups are followed
    ("{% set total = price * qty %}{{ total }}", ["price", "qty"]),
    ("{% set u = user %}{{ u.name }}", ["user.name"]),
    ("{% with a = user.address %}{{ a.city }}{% endwith %}", ["user.address.city"]),
    ("{% set block %}{{ x }}{% endset %}{{ block }}", ["x"]),
    ("{% set ns = namespace(n=0) %}{% set ns.n = ns.n + step %}{{ ns.n }}", ["step"]),
    # macros: arguments are local, the body can still read the row
    ("{% macro card(p, size=default_size) %}{{ p.name }}{{ brand }}{% endmacro %}{{ card(person) }}",
     ["brand", "default_size", "person"]),
    ("{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ inner }}{% endcall %}", ["inner"]),
    ("{{ self }}", []),
]


@pytest.mark.parametrize(("template", "expected"), VARIABLES)
def test_variables(template: str, expected: list[str]) -> None:
    assert Engine().compile(template).variables() == expected


def test_variables_returns_a_copy() -> None:
    template = Engine().compile("{{ a }}")
    template.variables().append("b")
    assert template.variables() == ["a"]
