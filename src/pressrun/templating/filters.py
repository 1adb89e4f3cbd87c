"""Template filters and functions: locale-aware formatting (Babel), QR codes (segno), size limits.

Every filter here is also callable as a function (``{{ currency(total, 'EUR') }}``). This module is
the one seam where Babel and segno exceptions become :class:`~pressrun.errors.ExpressionError`.

Formatting and text filters (``upper``, ``lower``, ``title``, ``truncate``…) pass missing values
(``None`` and Jinja undefineds) through unchanged, so a missing value still fails in strict mode,
renders empty in lenient mode, and ``default`` can catch it. ``None`` (JSON null, an empty typed
CSV cell) prints empty and ``default`` replaces it, like a missing value.
Numbers are rounded half-up (the invoice convention), not half-even like Babel and Python.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import functools
import io
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import babel
import babel.dates
import babel.numbers
import segno
from jinja2 import Undefined, pass_context, pass_eval_context
from jinja2.filters import do_default, do_lower, do_replace, do_title, do_upper

from pressrun.errors import ExpressionError, OutputTooLargeError, UsageError

LocaleGetter = Callable[[], babel.Locale]

MAX_FRACTION_DIGITS = 20
MAX_INTEGER_DIGITS = 30  # digits before the decimal point that the number filters format
MAX_NUMBER_TEXT_CHARS = 100
_WIDE_DECIMAL_CONTEXT = Context(prec=MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS + 20)  # exact for the supported range
_ROUNDING_BY_METHOD = {"common": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}
_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGIT_RUN = re.compile(r"\d+")
_NESTED_FORMAT_SPEC = re.compile(r":[^}]*\{")
_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
QR_DATA_URL_PREFIX = "data:image/svg+xml;base64,"


# --- values -----------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def short_repr(value: Any, max_chars: int = 60) -> str:
    """For messages: Python's repr, without the memory addresses of functions and objects."""
    text = _MEMORY_ADDRESS.sub("", repr(value))
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _fail(filter_name: str, value: Any, problem: str) -> ExpressionError:
    shown = short_repr(value)
    return ExpressionError(f"{filter_name}: {shown} {problem}", filter=filter_name, value=shown)


def to_decimal(value: Any, filter_name: str) -> Decimal:
    """A finite Decimal from an int, float, Decimal or numeric string (CSV cells are strings)."""
    number: Decimal | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT_CHARS:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        raise _fail(filter_name, value, "is not a number")
    if number and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise _fail(filter_name, value, f"is too large: numbers of up to {MAX_INTEGER_DIGITS} digits before "
                                        "the decimal point are supported")
    return number


def _round_half_up(number: Decimal, fraction_digits: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    # to_decimal bounds the number, so this cannot run out of precision.
    return number.quantize(Decimal(1).scaleb(-fraction_digits, _WIDE_DECIMAL_CONTEXT), rounding,
                           _WIDE_DECIMAL_CONTEXT)


def _fraction_digits(filter_name: str, decimals: Any) -> int:
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_FRACTION_DIGITS:
        raise _fail(filter_name, decimals, f"is not a number of decimals (0 to {MAX_FRACTION_DIGITS})")
    return decimals


def parse_locale(name: Any) -> babel.Locale:
    """``en_US`` or ``de-DE`` -> Locale; an unknown name is a usage error (a bad option, not bad data)."""
    if not isinstance(name, str):
        raise UsageError(f"locale: expected a locale name such as 'en_US' or 'de_DE', not {short_repr(name)}",
                         field="locale", value=short_repr(name))
    return _parse_locale_name(name)


@functools.lru_cache(maxsize=64)
def _parse_locale_name(name: str) -> babel.Locale:
    try:
        return babel.Locale.parse(name.replace("-", "_"))
    except (ValueError, TypeError, babel.UnknownLocaleError) as exc:
        raise UsageError(f"locale: {name!r} is not a known locale (e.g. 'en_US', 'de_DE')",
                         field="locale", value=name) from exc


# --- numbers ----------------------------------------------------------------------------------


_PATTERN_OF_KIND: dict[str, Callable[[babel.Locale], Any]] = {
    "currency": lambda locale: locale.currency_formats["standard"],
    "number": lambda locale: locale.decimal_formats[None],
    "percent": lambda locale: locale.percent_formats[None],
}


def _format_amount(amount: Decimal, kind: str, locale: babel.Locale,
                   fraction_digits: tuple[int, int] | None = None, currency_code: str | None = None) -> str:
    pattern = _PATTERN_OF_KIND[kind](locale)
    digits = fraction_digits or pattern.frac_prec
    scaled = amount.scaleb(pattern.scale, _WIDE_DECIMAL_CONTEXT)
    rounded = _round_half_up(scaled, digits[1]).scaleb(-pattern.scale, _WIDE_DECIMAL_CONTEXT)
    return _apply_pattern(abs(rounded) if not rounded else rounded, kind, digits, currency_code, locale)


@functools.lru_cache(maxsize=4096)
def _apply_pattern(rounded: Decimal, kind: str, fraction_digits: tuple[int, int], currency_code: str | None,
                   locale: babel.Locale) -> str:
    # Rows repeat prices a lot, hence the cache, keyed on the already rounded amount. Zero is
    # passed unsigned, so -0.001 renders "$0.00" and cannot share a cache entry with "-$0.00".
    pattern = copy.copy(_PATTERN_OF_KIND[kind](locale))
    pattern.frac_prec = fraction_digits
    with decimal.localcontext(_WIDE_DECIMAL_CONTEXT):  # Babel computes in the current context (28 digits)
        return pattern.apply(rounded, locale, currency=currency_code)


@functools.cache
def _known_currencies() -> frozenset[str]:
    return frozenset(babel.numbers.list_currencies())


def format_currency(value: Any, code: str = "USD", *, locale: babel.Locale) -> str:
    amount = to_decimal(value, "currency")
    if not isinstance(code, str) or not _CURRENCY_CODE.fullmatch(code):
        raise _fail("currency", code, "is not a currency code (ISO 4217, e.g. 'USD', 'EUR')")
    if code.upper() not in _known_currencies():
        raise _fail("currency", code, "is not a known currency code (ISO 4217, e.g. 'USD', 'EUR', 'GBP', 'JPY')")
    code = code.upper()
    digits = babel.numbers.get_currency_precision(code)
    return _format_amount(amount, "currency", locale, (digits, digits), code)


def format_number(value: Any, decimals: int | None = None, *, locale: babel.Locale) -> str:
    amount = to_decimal(value, "number")
    if decimals is None:
        return _format_amount(amount, "number", locale)
    digits = _fraction_digits("number", decimals)
    return _format_amount(amount, "number", locale, (digits, digits))


def format_percent(value: Any, decimals: int = 0, *, locale: babel.Locale) -> str:
    amount = to_decimal(value, "percent")
    digits = _fraction_digits("percent", decimals)
    return _format_amount(amount, "percent", locale, (digits, digits))


def round_number(value: Any, precision: int = 0, method: str = "common") -> Any:
    """Half-up rounding that keeps the input's kind: float -> float, int -> int, else Decimal."""
    if is_missing(value):
        return value
    amount = to_decimal(value, "round")
    if method not in _ROUNDING_BY_METHOD:
        raise _fail("round", method, f"is not a rounding method (valid: {', '.join(_ROUNDING_BY_METHOD)})")
    if isinstance(precision, bool) or not isinstance(precision, int) or abs(precision) > MAX_FRACTION_DIGITS:
        raise _fail("round", precision, f"is not a precision (-{MAX_FRACTION_DIGITS} to {MAX_FRACTION_DIGITS})")
    rounded = _round_half_up(amount, precision, _ROUNDING_BY_METHOD[method])
    if precision < 0:
        rounded = rounded.quantize(Decimal(1), context=_WIDE_DECIMAL_CONTEXT)
    if isinstance(value, float):
        return float(rounded)
    if isinstance(value, int):
        return int(rounded)
    return rounded


# --- dates ------------------------------------------------------------------------------------


def _parse_iso(value: Any, filter_name: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(filter_name, value, "is not a date (expected ISO 8601, e.g. '2024-03-05' or '2024-03-05T14:30:00')")


_DATE_STYLES = ("short", "medium", "long", "full")
_TIME_FIELDS = frozenset("aAbBhHkKmsSvVxXzZO")
_QUOTED = re.compile(r"'[^']*'?")
_FORMAT_HELP = "short, medium, long, full or a CLDR pattern such as 'd MMMM yyyy'"


def _check_date_pattern(filter_name: str, pattern: Any) -> str:
    """A named style or a CLDR pattern made of letters Babel knows; ``date`` takes no time fields."""
    if not isinstance(pattern, str):
        raise _fail(filter_name, pattern, f"is not a date format: the format must be text ({_FORMAT_HELP})")
    if pattern in _DATE_STYLES:
        return pattern
    letters = {char for char in _QUOTED.sub("", pattern) if char.isascii() and char.isalpha()}
    unknown = sorted(letters - set(babel.dates.PATTERN_CHARS))
    if not letters or unknown:
        problem = f"{', '.join(map(repr, unknown))} is not a CLDR pattern letter" if unknown else "has no date field"
        raise _fail(filter_name, pattern, f"is not a date format: {problem} ({_FORMAT_HELP}; quote literal "
                                          "text: \"d 'of' MMMM\")")
    times = sorted(letters & _TIME_FIELDS)
    if filter_name == "date" and times:
        raise _fail(filter_name, pattern, f"has time fields ({', '.join(times)}): use the datetime filter for times")
    return pattern


def _babel_format(filter_name: str, formatter: Callable[..., str], value: Any, pattern: Any,
                  locale: babel.Locale) -> str:
    pattern = _check_date_pattern(filter_name, pattern)
    try:
        return formatter(value, format=pattern, locale=locale)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise _fail(filter_name, pattern, f"is not a date format ({_FORMAT_HELP})") from exc


def format_date(value: Any, format: str = "medium", *, locale: babel.Locale) -> str:
    moment = _parse_iso(value, "date")
    day = moment.date() if isinstance(moment, dt.datetime) else moment
    return _babel_format("date", babel.dates.format_date, day, format, locale)


def format_datetime(value: Any, format: str = "medium", *, locale: babel.Locale) -> str:
    moment = _parse_iso(value, "datetime")
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time())
    return _babel_format("datetime", babel.dates.format_datetime, moment, format, locale)


# --- text and QR ------------------------------------------------------------------------------


def truncate_text(value: Any, length: int = 255, end: Any = "…", killwords: Any = False) -> Any:
    """Shorten to at most ``length`` characters including ``end``, at a word boundary by default.

    ``truncate(0)`` is empty; when ``end`` does not fit in ``length`` the text is cut without it.
    Jinja's argument order (``truncate(10, true)``: the second argument is ``killwords``, the third
    ``end``) is accepted when the second argument is true or false.
    """
    if is_missing(value):
        return value
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise _fail("truncate", length, "is not a length (a whole number >= 0)")
    if isinstance(end, bool):  # Jinja's order: truncate(length, killwords, end)
        end, killwords = ("…" if isinstance(killwords, bool) else killwords), end
    if not isinstance(end, str):
        raise _fail("truncate", end, "is not an end marker (text such as '…' or '...')")
    if not isinstance(killwords, bool):
        raise _fail("truncate", killwords, "is not a killwords flag (true or false)")
    text = str(value)
    if len(text) <= length:
        return text
    if len(end) >= length:
        return text[:length]
    keep_chars = length - len(end)
    kept = text[:keep_chars]
    if not killwords and text[keep_chars : keep_chars + 1] != " " and " " in kept:
        kept = kept.rsplit(" ", 1)[0]
    return kept.rstrip() + end


@functools.lru_cache(maxsize=256)
def _qr_svg_data_url(data: str, scale: int, border: int, dark: str, light: str | None, error: str) -> str:
    code = segno.make(data, error=error, micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=scale, border=border, dark=dark, light=light, xmldecl=False)
    return QR_DATA_URL_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def qr_data_url(value: Any, scale: int = 4, border: int = 4, dark: str = "#000",
                light: str | None = None, error: str = "m") -> Any:
    """QR code of ``value`` as an SVG data URL, for ``<img src="{{ url | qr }}">``."""
    if is_missing(value):
        return value
    data = str(value)
    if not data:
        raise _fail("qr", value, "is empty: there is nothing to encode")
    try:
        return _qr_svg_data_url(data, scale, border, dark, light, error)
    except segno.DataOverflowError as exc:
        raise _fail("qr", f"{len(data)} characters", "is too long for a QR code") from exc
    except (ValueError, TypeError) as exc:
        raise ExpressionError(f"qr: invalid option ({exc})", filter="qr") from exc


# --- size limits (used here and by the sandbox) -----------------------------------------------


def output_too_large(what: str, size: int, max_chars: int) -> OutputTooLargeError:
    return OutputTooLargeError(
        f"{what} would be {size} characters or more, over the limit of {max_chars} (max_output_chars)",
        limit=max_chars)


def check_int_args(what: str, values: Iterable[Any], max_chars: int) -> None:
    """Refuse an int argument (a width, count or repetition) larger than the output budget."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > max_chars:
            raise output_too_large(what, value, max_chars)


def check_printf_widths(fmt: str, max_chars: int) -> None:
    """``'%999999999s' % x`` would allocate before any other check could see it."""
    for match in _PRINTF_SPEC.finditer(fmt):
        for size in match.groups():
            if size == "*":
                raise ExpressionError("format: '*' widths are not supported; write the width in the format")
            if size is not None:
                check_int_args("format", [int(size)], max_chars)


def check_format_widths(fmt: str, values: Iterable[Any], max_chars: int) -> None:
    """The same for ``'{:>999999999}'.format(x)``, including widths passed as arguments."""
    check_int_args("format", (int(run) for run in _DIGIT_RUN.findall(fmt)), max_chars)
    if _NESTED_FORMAT_SPEC.search(fmt):
        check_int_args("format", values, max_chars)


def check_replace_size(text: Any, old: Any, new: Any, max_chars: int) -> None:
    text, old, new = str(text), str(old), str(new)
    occurrences = len(text) + 1 if not old else len(text) // len(old)
    check_int_args("replace", [len(text) + occurrences * len(new)], max_chars)


def _limit_int_args(builtin: Callable[..., Any], max_chars: int) -> Callable[..., Any]:
    @functools.wraps(builtin)
    def limited(*args: Any, **kwargs: Any) -> Any:
        check_int_args(builtin.__name__.removeprefix("do_"), [*args[1:], *kwargs.values()], max_chars)
        return builtin(*args, **kwargs)

    return limited


def limit_builtin_filters(builtins: Mapping[str, Callable[..., Any]], max_chars: int) -> dict[str, Callable[..., Any]]:
    """Jinja's filters whose arguments size their output (``'x' | center(10**9)``), capped."""
    limited = {name: _limit_int_args(builtins[name], max_chars) for name in ("center", "batch", "slice")}
    original_format, original_indent, original_wordwrap = builtins["format"], builtins["indent"], builtins["wordwrap"]

    @functools.wraps(original_indent)
    def indent(text: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        check_int_args("indent", [width], max_chars)
        prefix_chars = width if isinstance(width, int) else len(str(width))
        check_int_args("indent", [len(str(text)) + (str(text).count("\n") + 1) * prefix_chars], max_chars)
        return original_indent(text, width, *args, **kwargs)

    @functools.wraps(original_wordwrap)
    def wordwrap(environment: Any, text: Any, width: Any = 79, break_long_words: bool = True,
                 wrapstring: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(wrapstring, str) and isinstance(width, int) and width > 0:
            breaks = len(str(text)) // width + 1
            check_int_args("wordwrap", [len(str(text)) + breaks * len(wrapstring)], max_chars)
        return original_wordwrap(environment, text, width, break_long_words, wrapstring, *args, **kwargs)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        check_printf_widths(str(value), max_chars)
        longest = max((len(str(argument)) for argument in [*args, *kwargs.values()]), default=0)
        check_int_args("format", [len(str(value)) + str(value).count("%") * longest], max_chars)
        return original_format(value, *args, **kwargs)

    @pass_eval_context
    def replace(eval_ctx: Any, text: Any, old: Any, new: Any, count: int | None = None) -> str:
        check_replace_size(text, old, new, max_chars)
        return do_replace(eval_ctx, text, old, new, count)

    return {**limited, "format": format_, "replace": replace, "indent": indent, "wordwrap": wordwrap}


# --- registration -----------------------------------------------------------------------------


def _localized(formatter: Callable[..., str], locale_of: LocaleGetter) -> Callable[..., Any]:
    # pass_context is what stops Jinja from folding a constant call at compile time, which would
    # freeze the compile-time locale into the template; the context itself is not needed.
    @pass_context
    def localized(_context: Any, value: Any, *args: Any, locale: str | None = None, **kwargs: Any) -> Any:
        if is_missing(value):
            return value
        chosen = parse_locale(locale) if locale is not None else locale_of()
        return formatter(value, *args, locale=chosen, **kwargs)

    localized.__name__ = formatter.__name__
    return localized


def _passing_missing(text_filter: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(text_filter)
    def passing(value: Any, *args: Any, **kwargs: Any) -> Any:
        return value if is_missing(value) else text_filter(value, *args, **kwargs)

    return passing


def default_value(value: Any, default: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default``, which also replaces ``None``: a null cell is as good as a missing one."""
    return default if value is None else do_default(value, default, boolean)


def build_filters(locale_of: LocaleGetter) -> dict[str, Callable[..., Any]]:
    """Filters added to Jinja's built-ins; the same callables serve as global functions."""
    localized = {
        "currency": format_currency,
        "number": format_number,
        "percent": format_percent,
        "date": format_date,
        "datetime": format_datetime,
    }
    return {
        **{name: _localized(formatter, locale_of) for name, formatter in localized.items()},
        "round": round_number,
        "truncate": truncate_text,
        "qr": qr_data_url,
        "upper": _passing_missing(do_upper),
        "lower": _passing_missing(do_lower),
        "title": _passing_missing(do_title),
        "default": default_value,
        "d": default_value,
    }
