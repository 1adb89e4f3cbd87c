"""Locale-aware filters and their function-call forms (``{{ x | currency }}`` == ``{{ currency(x) }}``)."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import babel.numbers
import pytest

from pressrun.errors import ExpressionError, UsageError
from pressrun.templating import Engine

NBSP = "\xa0"
NNBSP = "\u202f"  # CLDR puts a narrow no-break space before AM/PM and in French grouping

FILTERS = [
    # (template, row, locale, expected)
    # currency
    ("{{ x | currency }}", {"x": 1234.5}, "en_US", "$1,234.50"),
    ("{{ x | currency('EUR') }}", {"x": 1234.5}, "de_DE", f"1.234,50{NBSP}€"),
    ("{{ x | currency('EUR') }}", {"x": Decimal("1234.5")}, "en_US", "€1,234.50"),
    ("{{ x | currency }}", {"x": "12.5"}, "en_US", "$12.50"),
    ("{{ x | currency }}", {"x": " 12.5 "}, "en_US", "$12.50"),
    ("{{ x | currency }}", {"x": 2.345}, "en_US", "$2.35"),  # half-up, not half-even or binary float
    ("{{ x | currency }}", {"x": -5}, "en_US", "-$5.00"),
    ("{{ x | currency }}", {"x": -0.001}, "en_US", "$0.00"),  # never "-$0.00"
    ("{{ x | currency('jpy') }}", {"x": 1000000.4}, "en_US", "¥1,000,000"),
    ("{{ x | currency('EUR', locale='fr_FR') }}", {"x": 1234.5}, "en_US", f"1{NNBSP}234,50{NBSP}€"),
    # number
    ("{{ x | number }}", {"x": 1234.5678}, "en_US", "1,234.568"),
    ("{{ x | number }}", {"x": 1234}, "en_US", "1,234"),
    ("{{ x | number(2) }}", {"x": 1234.5}, "en_US", "1,234.50"),
    ("{{ x | number(0) }}", {"x": "1234.5"}, "en_US", "1,235"),
    ("{{ x | number(2) }}", {"x": 1234.5}, "de_DE", "1.234,50"),
    # percent
    ("{{ x | percent }}", {"x": 0.256}, "en_US", "26%"),
    ("{{ x | percent(1) }}", {"x": "0.2567"}, "en_US", "25.7%"),
    ("{{ x | percent }}", {"x": 0.256}, "de_DE", f"26{NBSP}%"),
    # date / datetime
    ("{{ d | date }}", {"d": "2024-03-05"}, "en_US", "Mar 5, 2024"),
    ("{{ d | date('long') }}", {"d": "2024-03-05"}, "en_US", "March 5, 2024"),
    ("{{ d | date('short') }}", {"d": dt.date(2024, 3, 5)}, "en_US", "3/5/24"),
    ("{{ d | date('full') }}", {"d": dt.datetime(2024, 3, 5, 14, 30)}, "en_US", "Tuesday, March 5, 2024"),
    ("{{ d | date('d MMMM yyyy') }}", {"d": "2024-03-05T14:30:00"}, "en_US", "5 March 2024"),
    ("{{ d | date('long') }}", {"d": "2024-03-05"}, "de_DE", "5. März 2024"),
    ("{{ d | datetime }}", {"d": "2024-03-05T14:30:00"}, "en_US", f"Mar 5, 2024, 2:30:00{NNBSP}PM"),
    ("{{ d | datetime('short') }}", {"d": dt.datetime(2024, 3, 5, 14, 30)}, "en_US", f"3/5/24, 2:30{NNBSP}PM"),
    ("{{ d | datetime('yyyy-MM-dd HH:mm') }}", {"d": dt.date(2024, 3, 5)}, "en_US", "2024-03-05 00:00"),
    # round: half-up, keeps the input's kind
    ("{{ x | round(2) }}", {"x": 2.567}, "en_US", "2.57"),
    ("{{ x | round }}", {"x": 2.5}, "en_US", "3.0"),
    ("{{ x | round(2) }}", {"x": "2.345"}, "en_US", "2.35"),
    ("{{ x | round }}", {"x": 7}, "en_US", "7"),
    ("{{ x | round(-2) }}", {"x": 1234}, "en_US", "1200"),
    ("{{ x | round(0, 'ceil') }}", {"x": 2.1}, "en_US", "3.0"),
    ("{{ x | round(1, 'floor') }}", {"x": Decimal("2.19")}, "en_US", "2.1"),
    # text
    ("{{ s | truncate(12) }}", {"s": "The quick brown fox"}, "en_US", "The quick…"),
    ("{{ s | truncate(40) }}", {"s": "The quick brown fox"}, "en_US", "The quick brown fox"),
    ("{{ s | truncate(5, end='...') }}", {"s": "abcdefghij"}, "en_US", "ab..."),
    ("{{ s | truncate(10, killwords=true) }}", {"s": "The quick brown fox"}, "en_US", "The quick…"),
    ("{{ s | upper }}|{{ s | lower }}|{{ s | title }}", {"s": "ada LOVELACE"}, "en_US",
     "ADA LOVELACE|ada lovelace|Ada Lovelace"),
    ("{{ s | default('anon') }}", {}, "en_US", "anon"),
    ("{{ s | default('anon') }}", {"s": "Ada"}, "en_US", "Ada"),
    ("{{ s | truncate(4, true) }}|{{ s | truncate(4, true, '.') }}", {"s": "hello world"}, "en_US", "hel…|hel."),
    ("[{{ s | truncate(0) }}|{{ s | truncate(1) }}|{{ s | truncate(3, end='...') }}]", {"s": "hello"}, "en_US",
     "[|h|hel]"),  # the end marker never makes the result longer than length
    ("{{ d | date(\"d 'of' MMMM\") }}", {"d": "2024-03-05"}, "en_US", "5 of March"),
    # big numbers: up to 30 digits before the decimal point
    ("{{ x | currency }}", {"x": "1e26"}, "en_US", "$100,000,000,000,000,000,000,000,000.00"),
    ("{{ x | number(2) }}", {"x": "1e26"}, "en_US", "100,000,000,000,000,000,000,000,000.00"),
    ("{{ x | percent }}", {"x": "1e26"}, "en_US", "10,000,000,000,000,000,000,000,000,000%"),
    ("{{ 10**27 | number }}", {}, "en_US", "1,000,000,000,000,000,000,000,000,000"),
    ("{{ x | number(20) }}", {"x": "-1e29"}, "en_US", "-100,000,000,000,000,000,000,000,000,000." + "0" * 20),
    ("{{ x | round(-20) }}", {"x": "1.5e29"}, "en_US", "150000000000000000000000000000"),
    # missing values pass through formatting filters to default
    ("{{ x | currency | default('n/a') }}", {}, "en_US", "n/a"),
    ("{{ x | currency }}", {"x": None}, "en_US", ""),
    # None (JSON null) is empty text, and default replaces it
    ("[{{ n | upper }}|{{ n | lower }}|{{ n | title }}|{{ n | truncate(3) }}]", {"n": None}, "en_US", "[|||]"),
    ("{{ n ~ 'a' ~ n }}", {"n": None}, "en_US", "a"),
    ("{{ n | default('x') }}|{{ n | d('y') }}", {"n": None}, "en_US", "x|y"),
    ("{{ n | default('x') }}", {"n": 0}, "en_US", "0"),
    ("{{ n | default('x', true) }}", {"n": ""}, "en_US", "x"),
]


@pytest.mark.parametrize(("template", "row", "locale", "expected"), FILTERS)
def test_filter(template: str, row: dict, locale: str, expected: str) -> None:
    assert Engine(locale=locale).compile(template).render(row) == expected


FUNCTIONS = [
    # (function-call template, row, expected) — Pictify-style calls of the same filters
    ("{{ currency(total, 'EUR') }}", {"total": 1234.5}, "€1,234.50"),
    ("{{ currency(total) }}", {"total": "99"}, "$99.00"),
    ("{{ round(x, 2) }}", {"x": 3.14159}, "3.14"),
    ("{{ truncate(text, 12) }}", {"text": "The quick brown fox"}, "The quick…"),
    ("{{ upper(name) }}|{{ lower(name) }}|{{ title(name) }}", {"name": "ada lovelace"},
     "ADA LOVELACE|ada lovelace|Ada Lovelace"),
    ("{{ number(x, 2) }}", {"x": 1234.5}, "1,234.50"),
    ("{{ percent(x) }}", {"x": 0.5}, "50%"),
    ("{{ date(d, 'long') }}", {"d": "2024-03-05"}, "March 5, 2024"),
    ("{{ datetime(d, 'HH:mm') }}", {"d": "2024-03-05T14:30:00"}, "14:30"),
    ("{{ default(nickname, 'anon') }}", {}, "anon"),
    # a row column named like a function does not shadow the function
    ("{{ date }}: {{ date(date, 'long') }}", {"date": "2024-03-05"}, "2024-03-05: March 5, 2024"),
    ("No. {{ number }}: {{ number(total, 2) }}", {"number": "INV-7", "total": 5}, "No. INV-7: 5.00"),
    # ... but a template's own macro of that name does
    ("{% macro date(d) %}D={{ d }}{% endmacro %}{{ date('x') }}", {}, "D=x"),
]


@pytest.mark.parametrize(("template", "row", "expected"), FUNCTIONS)
def test_function_call_style(template: str, row: dict, expected: str) -> None:
    assert Engine().compile(template).render(row) == expected


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr_FR", "de_CH", "nl_NL", "hi_IN", "ja_JP", "ar_EG"])
@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "KWD"])
def test_currency_matches_babel(locale: str, code: str) -> None:
    # We place the currency symbol ourselves (faster); the result must stay Babel's.
    amounts = [Decimal("0"), Decimal("1234567.891"), Decimal("-42.5"), Decimal("0.5")]
    digits = babel.numbers.get_currency_precision(code)
    template = Engine(locale=locale).compile("{{ x | currency(code) }}")
    for amount in amounts:
        rounded = amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        expected = babel.numbers.format_currency(rounded, code, locale=locale)
        assert template.render({"x": amount, "code": code}, strict=True) == expected


def test_render_locale_overrides_engine_locale() -> None:
    template = Engine(locale="en_US").compile("{{ x | currency('EUR') }} {{ d | date('long') }}")
    row = {"x": 1234.5, "d": "2024-03-05"}
    assert template.render(row) == "€1,234.50 March 5, 2024"
    assert template.render(row, locale="de_DE") == f"1.234,50{NBSP}€ 5. März 2024"
    assert template.render(row, locale="de-DE") == f"1.234,50{NBSP}€ 5. März 2024"
    assert template.render(row) == "€1,234.50 March 5, 2024"  # the override does not stick


def test_constant_arguments_still_use_the_render_locale() -> None:
    # Jinja folds constant expressions at compile time; localized filters must not be folded.
    template = Engine().compile("{{ 1234.5 | number(1) }}")
    assert template.render({}, locale="de_DE") == "1.234,5"


FILTER_ERRORS = [
    # (template, row, message after "template.html line 1: ")
    ("{{ x | currency }}", {"x": "abc"}, "currency: 'abc' is not a number"),
    ("{{ currency(x) }}", {"x": "abc"}, "currency: 'abc' is not a number"),
    ("{{ x | number }}", {"x": "12,5"}, "number: '12,5' is not a number"),
    ("{{ x | percent }}", {"x": [1]}, "percent: [1] is not a number"),
    ("{{ x | currency }}", {"x": True}, "currency: True is not a number"),
    ("{{ x | currency }}", {"x": "NaN"}, "currency: 'NaN' is not a number"),
    ("{{ x | round }}", {"x": "abc"}, "round: 'abc' is not a number"),
    ("{{ x | currency('dollars') }}", {"x": 1}, "currency: 'dollars' is not a currency code (ISO 4217, e.g. 'USD', 'EUR')"),
    ("{{ x | number(-1) }}", {"x": 1}, "number: -1 is not a number of decimals (0 to 20)"),
    ("{{ x | round(1, 'up') }}", {"x": 1}, "round: 'up' is not a rounding method (valid: common, ceil, floor)"),
    ("{{ x | date }}", {"x": "yesterday"},
     "date: 'yesterday' is not a date (expected ISO 8601, e.g. '2024-03-05' or '2024-03-05T14:30:00')"),
    ("{{ x | datetime }}", {"x": 5}, "datetime: 5 is not a date (expected ISO 8601, e.g. '2024-03-05' or '2024-03-05T14:30:00')"),
    ("{{ x | truncate(-1) }}", {"x": "abc"}, "truncate: -1 is not a length (a whole number >= 0)"),
    ("{{ x | qr }}", {"x": ""}, "qr: '' is empty: there is nothing to encode"),
    ("{{ x | qr }}", {"x": "x" * 8000}, "qr: '8000 characters' is too long for a QR code"),
    ("{{ x | qr(color='red') }}", {"x": "hi"}, "qr: got an unexpected keyword argument 'color'"),
    ("{{ x | currency('EUR', 1, 2) }}", {"x": 1}, "currency: takes from 1 to 2 positional arguments"),
    ("{{ x | currency('ABC') }}", {"x": 1234.5},
     "currency: 'ABC' is not a known currency code (ISO 4217, e.g. 'USD', 'EUR', 'GBP', 'JPY')"),
    ("{{ x | currency }}", {"x": "1e30"},
     "currency: '1e30' is too large: numbers of up to 30 digits before the decimal point are supported"),
    ("{{ x | currency }}", {"x": 1e308}, "currency: 1e+308 is too large: numbers of up to 30 digits"),
    ("{{ x | number }}", {"x": 10**40}, "number: 10000000000000000000000000000000000000000 is too large"),
    ("{{ x | percent }}", {"x": "1e30"}, "percent: '1e30' is too large"),
    ("{{ x | round(-20) }}", {"x": "1e130"}, "round: '1e130' is too large"),
    ("{{ x | date('bogus') }}", {"x": "2024-03-05"}, "date: 'bogus' is not a date format: 'o' is not a CLDR pattern "
                                                     "letter (short, medium, long, full or a CLDR pattern such as"),
    ("{{ x | date('r') }}", {"x": "2024-03-05"}, "date: 'r' is not a date format: 'r' is not a CLDR pattern letter"),
    ("{{ x | date(None) }}", {"x": "2024-03-05"}, "date: None is not a date format: the format must be text"),
    ("{{ x | date(5) }}", {"x": "2024-03-05"}, "date: 5 is not a date format: the format must be text"),
    ("{{ x | date('-') }}", {"x": "2024-03-05"}, "date: '-' is not a date format: has no date field"),
    ("{{ x | date('HH:mm') }}", {"x": "2024-03-05"},
     "date: 'HH:mm' has time fields (H, m): use the datetime filter for times"),
    ("{{ x | datetime('bogus') }}", {"x": "2024-03-05"}, "datetime: 'bogus' is not a date format"),
    ("{{ x | truncate(3, 5) }}", {"x": "hello"}, "truncate: 5 is not an end marker (text such as '…' or '...')"),
    ("{{ x | truncate(3, '.', 'yes') }}", {"x": "hello"}, "truncate: 'yes' is not a killwords flag (true or false)"),
]


@pytest.mark.parametrize(("template", "row", "message"), FILTER_ERRORS)
def test_filter_error(template: str, row: dict, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Engine().compile(template).render(row)
    assert caught.value.message.startswith(f"template.html line 1: {message}")
    assert caught.value.details["line"] == 1


def test_filter_error_details_name_the_filter_and_value() -> None:
    with pytest.raises(ExpressionError) as caught:
        Engine().compile("{{ x | currency }}").render({"x": "abc"})
    assert caught.value.details == {"filter": "currency", "value": "'abc'", "file": "template.html", "line": 1}


def test_qr_is_an_svg_data_url() -> None:
    html = Engine().compile('<img src="{{ url | qr(scale=2, border=1, dark=\'#123456\') }}">').render(
        {"url": "https://example.com/t/1?a=1&b=2"})
    prefix = '<img src="data:image/svg+xml;base64,'
    assert html.startswith(prefix) and html.endswith('">')
    svg = base64.b64decode(html[len(prefix):-2]).decode()
    assert svg.startswith("<svg") and 'stroke="#123456"' in svg and "scale(2)" in svg


def test_qr_function_form_matches_filter_form() -> None:
    engine = Engine()
    row = {"url": "https://example.com"}
    assert engine.compile("{{ qr(url) }}").render(row) == engine.compile("{{ url | qr }}").render(row)


@pytest.mark.parametrize("locale", ["xx_YY", "not a locale"])
def test_unknown_locale_is_a_usage_error(locale: str) -> None:
    with pytest.raises(UsageError) as caught:
        Engine(locale=locale)
    assert caught.value.details["field"] == "locale"
    with pytest.raises(UsageError):
        Engine().compile("{{ 1 }}").render({}, locale=locale)
