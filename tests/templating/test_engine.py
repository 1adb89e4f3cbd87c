"""Engine and CompiledTemplate: rendering rows, strict and lenient missing values, error mapping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from pressrun.errors import (
    ExpressionError,
    InvalidValueError,
    MissingVariableError,
    RowError,
    TemplateSyntaxError,
    UsageError,
)
from pressrun.templating import CompiledTemplate, Engine


class ReadOnlyRow(Mapping[str, Any]):
    """A Mapping that is not a dict, as a row source might hand over."""

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


RENDERS = [
    # (template, row, expected HTML)
    # autoescape, and the template author's explicit opt-out
    ("{{ v }}", {"v": "<b>"}, "&lt;b&gt;"),
    ("{{ v | safe }}", {"v": "<b>"}, "<b>"),
    ('<a title="{{ v }}">', {"v": "\"Tom\" & 'Jerry'"}, '<a title="&#34;Tom&#34; &amp; &#39;Jerry&#39;">'),
    ("{{ a ~ b }}", {"a": "<i>", "b": 1}, "&lt;i&gt;1"),
    # conditionals and loops
    ("{% if n > 1 %}many{% elif n == 1 %}one{% else %}none{% endif %}", {"n": 1}, "one"),
    ("{% for it in items %}{{ loop.index }}:{{ it.name }}{% if not loop.last %}, {% endif %}{% endfor %}",
     {"items": [{"name": "a"}, {"name": "b"}]}, "1:a, 2:b"),
    ("{% for it in items %}x{% else %}empty{% endfor %}", {"items": []}, "empty"),
    ("{% for k, v in user | dictsort %}{{ k }}={{ v }};{% endfor %}", {"user": {"b": 2, "a": 1}}, "a=1;b=2;"),
    ("{% for k, v in user.items() %}{{ k }}={{ v }};{% endfor %}", {"user": {"a": 1, "b": 2}}, "a=1;b=2;"),
    ("<ul>\n{%- for i in items %}\n  <li>{{ i }}</li>\n{%- endfor %}\n</ul>", {"items": [1, 2]},
     "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>"),
    # nested lookups: dots and brackets on mappings and lists
    ("{{ user.address.city }}", {"user": {"address": {"city": "Lyon"}}}, "Lyon"),
    ("{{ user['address']['city'] }}", {"user": {"address": {"city": "Lyon"}}}, "Lyon"),
    ("{{ items[0].name }}|{{ items[-1]['name'] }}", {"items": [{"name": "a"}, {"name": "b"}]}, "a|b"),
    ("{{ user['first name'] }}", {"user": {"first name": "Ada"}}, "Ada"),
    ("{{ user._id }}", {"user": {"_id": 7}}, "7"),  # data keys may start with "_"
    # a row key wins over a dict method of the same name (order.items is the list, not dict.items)
    ("{% for it in order.items %}{{ it }}{% endfor %}", {"order": {"items": ["x", "y"]}}, "xy"),
    ("{{ order.values | join(',') }}", {"order": {"values": [1, 2]}}, "1,2"),
    # default
    ("{{ nickname | default('anon') }}", {}, "anon"),
    ("{{ nickname | default('anon', true) }}", {"nickname": ""}, "anon"),
    ("{{ user.address.city | default('-') }}", {"user": {}}, "-"),
    ("{% if x is defined %}d{% else %}u{% endif %}{% if y is undefined %}U{% endif %}", {"x": 0}, "dU"),
    # row value types: JSON, plus Decimal / date / datetime / bool from CSV typing
    ("{{ n }}|{{ f }}|{{ t }}|{{ z }}|{{ l | join('+') }}|{{ d.k }}", {"n": 3, "f": 2.5, "t": False, "z": None,
     "l": [1, "a"], "d": {"k": 1}}, "3|2.5|False||1+a|1"),
    ("{{ dec }}|{{ dec * 2 }}|{{ day }}|{{ moment }}|{{ day.year }}", {"dec": Decimal("1.10"), "day": dt.date(2024, 3, 5),
     "moment": dt.datetime(2024, 3, 5, 14, 30)}, "1.10|2.20|2024-03-05|2024-03-05 14:30:00|2024"),
    ("{% if paid %}paid{% endif %}{% if not refunded %} ok{% endif %}", {"paid": True, "refunded": False}, "paid ok"),
    # locals, macros, namespaces
    ("{% set total = price * qty %}{{ total }}", {"price": 2, "qty": 3}, "6"),
    ("{% macro tag(t) %}<b>{{ t }}</b>{% endmacro %}{{ tag(name) }}", {"name": "<x>"}, "<b>&lt;x&gt;</b>"),
    ("{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
     {"items": [1, 2, 3]}, "6"),
]


@pytest.mark.parametrize(("template", "row", "expected"), RENDERS)
def test_render(template: str, row: dict, expected: str) -> None:
    assert Engine().compile(template).render(row) == expected


@pytest.mark.parametrize("row", [MappingProxyType({"user": {"name": "Ada"}}), ReadOnlyRow(user=ReadOnlyRow(name="Ada"))])
def test_any_mapping_is_a_row(row: Mapping[str, Any]) -> None:
    assert Engine().compile("{{ user.name }}/{{ user['name'] }}").render(row) == "Ada/Ada"


def test_compile_once_render_many() -> None:
    template = Engine().compile("Hi {{ name }}")
    assert isinstance(template, CompiledTemplate)
    assert [template.render({"name": name}) for name in ("A", "B", "C")] == ["Hi A", "Hi B", "Hi C"]


STRICT_MISSING = [
    # (template, row, variable named in the error)
    ("{{ name }}", {}, "name"),
    ("{{ user.address.city }}", {"user": {}}, "user.address.city"),
    ("{{ user.address.city }}", {}, "user.address.city"),
    ("{{ user['address'].city }}", {"user": {"address": {}}}, "user.address.city"),
    ("{{ user.name.first }}", {"user": {"name": None}}, "user.name.first"),
    ("{{ x.y.z }}", {"x": 1, "other": 1}, "x.y.z"),
    ("{{ items[5] }}", {"items": [1, 2]}, "items[5]"),
    ("{{ items[0].name }}", {"items": []}, "items[0].name"),
    ("{% for it in items %}{{ it.nam }}{% endfor %}", {"items": [{"name": "a"}]}, "items[0].nam"),
    ("{% for x in xs %}{% endfor %}", {}, "xs"),
    ("{% if flag %}{% endif %}", {}, "flag"),
    ("{{ total + 1 }}", {}, "total"),
    ("{{ nickname or 'x' }}", {}, "nickname"),  # strict: only `default` and `is defined` accept a missing value
    ("{{ user.greet() }}", {"user": {}}, "user.greet"),
    ("{{ name | upper }}", {}, "name"),
    ("{{ price | currency }}", {}, "price"),
    ("{{ x.y.z }}", {"x": 1}, "x.y.z"),  # found from the template's paths: the row holds 1 at x
    ("{% for it in items %}{{ it.b.c }}{% endfor %}", {"items": [{"b": 0}], "zero": 0}, "items[].b.c"),
]


@pytest.mark.parametrize(("template", "row", "variable"), STRICT_MISSING)
def test_strict_missing_variable(template: str, row: dict, variable: str) -> None:
    with pytest.raises(MissingVariableError) as caught:
        Engine().compile(template).render(row)
    assert caught.value.message == f"missing variable '{variable}'"
    assert caught.value.details == {"variable": variable, "file": "template.html", "line": 1}


def test_missing_variable_reports_its_line() -> None:
    template = Engine().compile("<h1>{{ title }}</h1>\n<p>\n  {{ user.address.city }}\n</p>", name="card.html")
    with pytest.raises(MissingVariableError) as caught:
        template.render({"title": "T", "user": {"address": {}}})
    assert caught.value.details == {"variable": "user.address.city", "file": "card.html", "line": 3}


@pytest.mark.parametrize(("template", "row", "message"), [
    ("{% for i in range(3) %}{{ i.label }}{% endfor %}", {"count": 0}, "0 has no key or attribute 'label'"),
    ("{% set u = {'a': 1} %}{{ u.b }}", {"u": {"a": 1}}, "{'a': 1} has no key or attribute 'b'"),
    ("{{ flag.x }}", {"flag": True, "other": True}, "missing variable 'flag.x'"),
])
def test_missing_lookup_on_a_template_value_names_no_column(template: str, row: dict, message: str) -> None:
    with pytest.raises(MissingVariableError) as caught:
        Engine().compile(template).render(row)
    assert caught.value.message.removeprefix("template.html line 1: ") == message


def test_missing_macro_argument() -> None:
    with pytest.raises(MissingVariableError) as caught:
        Engine().compile("{% macro m(a) %}{{ a }}{% endmacro %}{{ m() }}").render({})
    assert caught.value.message == "parameter 'a' was not provided"


LENIENT = [
    # (template, row, expected HTML) — strict=False: missing values render empty
    ("[{{ name }}]", {}, "[]"),
    ("[{{ user.address.city }}]", {"user": {}}, "[]"),
    ("[{{ user.address.city }}]", {}, "[]"),
    ("[{{ items[3].name }}]", {"items": []}, "[]"),
    ("{% for x in xs %}a{% else %}empty{% endfor %}", {}, "empty"),
    ("{% if flag %}y{% else %}n{% endif %}", {}, "n"),
    ("[{{ user.greet() }}]", {}, "[]"),
    ("[{{ name | upper }}]", {}, "[]"),
    ("[{{ price | currency }}]", {}, "[]"),
    ("{{ nickname or 'x' }}", {}, "x"),
    ("{{ nickname | default('anon') }}", {}, "anon"),
    ("{{ x == y }}", {"x": 1}, "False"),
]


@pytest.mark.parametrize(("template", "row", "expected"), LENIENT)
def test_lenient_missing_renders_empty(template: str, row: dict, expected: str) -> None:
    assert Engine(strict=False).compile(template).render(row) == expected
    assert Engine().compile(template).render(row, strict=False) == expected


LENIENT_OPERATIONS = [
    # (template, row, expected HTML) — strict=False: a missing operand makes the whole operation missing
    ("[{{ price * qty | currency }}]", {"price": 3}, "[]"),
    ("[{{ total + 1 }}]", {}, "[]"),
    ("[{{ 1 + total }}]", {}, "[]"),
    ("[{{ -total }}]", {}, "[]"),
    ("[{{ (total - 1) / 2 }}]", {}, "[]"),
    ("[{{ total > 1 }}]", {}, "[]"),
    ("{% if total > 1 %}big{% else %}small{% endif %}", {}, "small"),
    ("[{{ 'Total: ' ~ total }}]", {}, "[]"),
    ("[{{ (price * qty) | round(2) | upper }}]", {"qty": 2}, "[]"),
    ("{{ price * qty | default('n/a') }}", {"price": 3}, "n/a"),
    ("{{ price * qty | currency }}", {"price": 3, "qty": 2}, "$6.00"),  # present values are unaffected
]


@pytest.mark.parametrize(("template", "row", "expected"), LENIENT_OPERATIONS)
def test_lenient_missing_operand_makes_the_operation_missing(template: str, row: dict, expected: str) -> None:
    assert Engine(strict=False).compile(template).render(row) == expected


@pytest.mark.parametrize("template", [t for t, _row, _expected in LENIENT_OPERATIONS[:-2]])
def test_strict_missing_operand_fails(template: str) -> None:
    with pytest.raises(MissingVariableError):
        Engine().compile(template).render({"price": 3})


def test_strictness_override_does_not_stick() -> None:
    template = Engine().compile("[{{ name }}]")
    assert template.render({}, strict=False) == "[]"
    with pytest.raises(MissingVariableError):
        template.render({})
    assert Engine(strict=False).compile("[{{ name }}]").render({}, strict=False) == "[]"
    with pytest.raises(MissingVariableError):
        Engine(strict=False).compile("[{{ name }}]").render({}, strict=True)


EXPRESSION_ERRORS = [
    # (template, message) — whatever fails inside a template becomes an ExpressionError with its line
    ("a\nb\n{{ 1 / 0 }}", "template.html line 3: division by zero"),
    ("{{ 'a' + 1 }}", 'template.html line 1: can only concatenate str (not "int") to str'),
    ("{{ '%d' % 'x' }}", "template.html line 1: %d format: a real number is required, not str"),
    ("{{ n.bit_length(1) }}", "template.html line 1: int.bit_length() takes no arguments (1 given)"),
    ("{{ user.keys() }}", "template.html line 1: 'int' object is not callable"),  # the key wins
    ("a\n{% macro m(x) %}\n{{ x / 0 }}\n{% endmacro %}\n{{ m(1) }}", "template.html line 3: division by zero"),
    ("{{ 10 ** 5000 }}", "template.html line 1: Exceeds the limit (4300 digits) for integer string conversion"),
    ("{{ '{x}'.format_map(user) }}",
     "template.html line 1: format_map: the format string '{x}' has a field {x} but no value named 'x' was given"),
    ("{{ '{}{}'.format(1) }}", "template.html line 1: format: the format string '{}{}' has more {} fields than the 1 "
                               "values given"),
    ("{{ price * 0.9 }}", "template.html line 1: '*': '12.50' is text, not a number, so it cannot be used with 0.9 "
                          "(can't multiply sequence by non-int of type 'float'); declare the column's type in "
                          "pressrun.toml [columns] (e.g. price = \"number\") or convert it in the template with | float"),
    ("{{ price - 1 }}", "template.html line 1: '-': '12.50' is text, not a number"),
    ("{{ price / 2 }}", "template.html line 1: '/': '12.50' is text, not a number"),
]


@pytest.mark.parametrize(("template", "message"), EXPRESSION_ERRORS)
def test_expression_error(template: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Engine().compile(template).render({"n": 1, "user": {"keys": 2}, "price": "12.50"})
    assert caught.value.message.startswith(message)
    assert isinstance(caught.value.__cause__, Exception)


SYNTAX_ERRORS = [
    # (template, line, message after "template.html line N: ")
    ("a\nb\n{{ foo }", 3, "unexpected '}'"),
    ("{% if %}{% endif %}", 1, "Expected an expression, got 'end of statement block'"),
    ("ok\n{{ x | nope }}", 2, "No filter named 'nope'."),
    ("{{ x is nope }}", 1, "No test named 'nope'."),
    ("{{ }}", 1, "Expected an expression, got 'end of print statement'"),
    ("{{ | upper }}", 1, "unexpected '|'"),
    ("{{ 'abc }}", 1, "unexpected char \"'\" at 3"),
    ("{% endif %}", 1, "Encountered unknown tag 'endif'."),
    # after lines whose pipes were rewritten, lines still match the source
    ("{{ price * 0.9 | currency }}\n{{ a + b | number }}\n{{ a + }}", 3, "unexpected 'end of print statement'"),
    ("{{\n  price\n  * 2 | currency\n}}\n{% endfor %}", 5, "Encountered unknown tag 'endfor'."),
    ("{{ a | b }}\r\n{{ c | d }}\r\n{{ foo }", 3, "unexpected '}'"),
]


@pytest.mark.parametrize(("template", "line", "message"), SYNTAX_ERRORS)
def test_syntax_error(template: str, line: int, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile(template)
    assert caught.value.message == f"template.html line {line}: {message}"
    assert caught.value.details == {"file": "template.html", "line": line}


def test_syntax_error_names_the_template() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile("ok\n{% if %}", name="card.html")
    assert caught.value.message.startswith("card.html line 2: ")
    assert caught.value.details == {"file": "card.html", "line": 2}


def test_template_name() -> None:
    assert Engine().compile("x", name="card.html").name == "card.html"


@pytest.mark.parametrize(("options", "field"), [
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": -1.0}, "timeout_s"),
    ({"timeout_s": "2"}, "timeout_s"),
    ({"timeout_s": None}, "timeout_s"),
    ({"timeout_s": float("inf")}, "timeout_s"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"timeout_s": True}, "timeout_s"),
    ({"max_output_chars": 0}, "max_output_chars"),
    ({"max_output_chars": True}, "max_output_chars"),
    ({"max_output_chars": 1.5}, "max_output_chars"),
    ({"locale": "zz_ZZ"}, "locale"),
    ({"locale": ["en"]}, "locale"),
    ({"locale": None}, "locale"),
    ({"strict": "yes"}, "strict"),
])
def test_engine_options_are_validated(options: dict, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        Engine(**options)
    assert caught.value.details["field"] == field
    assert caught.value.message.startswith(f"{field}: ")


@pytest.mark.parametrize(("options", "field"), [({"locale": ["x"]}, "locale"), ({"strict": 1}, "strict")])
def test_render_options_are_validated(options: dict, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        Engine().compile("{{ 1 }}").render({}, **options)
    assert caught.value.details["field"] == field


@pytest.mark.parametrize(("source", "name", "field"), [(None, "t.html", "source"), (b"{{ x }}", "t.html", "source"),
                                                       ("x", None, "name"), ("x", "", "name")])
def test_compile_arguments_are_validated(source: Any, name: Any, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        Engine().compile(source, name=name)
    assert caught.value.details["field"] == field


@pytest.mark.parametrize("row", [["a"], "name=Ada", None])
def test_row_must_be_a_mapping(row: Any) -> None:
    with pytest.raises(InvalidValueError):
        Engine().compile("{{ name }}").render(row)


def test_only_row_errors_leave_render() -> None:
    templates = ["{{ 1/0 }}", "{{ x.y.z }}", "{{ ''.__class__ }}", "{{ 'x' * 10**9 }}", "{% include 'a' %}",
                 "{{ [] | first | upper }}", "{{ {} | dictsort(by='nope') }}", "{{ [1, 'a'] | sort }}"]
    for source in templates:
        with pytest.raises(RowError):
            Engine().compile(source).render({"x": 1})


def test_concurrent_renders_keep_their_own_locale_and_mode() -> None:
    template = Engine().compile("{{ x | number(1) }}{{ missing }}")

    def render(index: int) -> str:
        locale = "de_DE" if index % 2 else "en_US"
        return template.render({"x": 1234.5}, locale=locale, strict=False)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(render, range(200)))
    assert results == ["1,234.5" if index % 2 == 0 else "1.234,5" for index in range(200)]
