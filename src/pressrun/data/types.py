"""The shape of a row: header columns -> nested values, and declared column types -> typed values.

Pure code, no I/O: :mod:`pressrun.data.readers` feeds it header cells, record fields and already-decoded
JSON values, and takes from here the row errors about shape (extra fields, a JSON row that is not an
object) so that every row-level message is built in one place.

**Nested keys.** A header column whose name contains dots (``user.name``, ``user.address.city``) becomes
nested dicts, so a template can write ``{{ user.address.city }}``. That is the whole rule: every dot
opens a level, no escaping, no list indexes. A column that is both a value and a group (``a`` next to
``a.b``) is a :class:`DataError`, as is an empty part (``a..b``, ``.a``). JSON and JSONL rows are
already nested and are never split on dots.

**Column types.** ``column_types`` maps a column (dotted name for a nested one, e.g. ``user.age``) to
``string``, ``number``, ``integer``, ``date``, ``datetime`` or ``boolean`` (case-insensitive; the aliases
``str``, ``float``, ``int`` and ``bool`` are accepted). Decisions:

- ``number`` gives an ``int`` when the value is integral (``"12"``, ``"12.00"``, ``"1e3"``) and a
  ``float`` otherwise, never a ``Decimal``: templates do ``{{ price * 0.9 }}`` and ``Decimal * float``
  raises. Numbers that are already ``int``/``float`` (XLSX, JSON) are left alone.
- ``integer`` accepts whole numbers, also written ``"12.0"``; an XLSX/JSON ``12.0`` becomes ``12``.
  No thousands separators (``"1,000"`` is refused), no ``nan``/``inf``.
- ``date`` accepts ISO ``YYYY-MM-DD`` only (and a midnight ``datetime`` from XLSX); ``datetime`` accepts
  ISO 8601 as :meth:`datetime.datetime.fromisoformat` does (``Z`` included; a bare date means midnight).
- ``boolean`` accepts true/false, yes/no, y/n, 1/0 in any case.
- An empty or blank value in a typed column becomes ``None``, except for ``string`` columns, which are
  never ``None`` (Jinja prints ``None`` as the text "None"). Columns with no declared type are untouched.
- A value that does not convert makes the row's error an :class:`InvalidValueError` naming the column,
  the value and what was expected; the first failing column (in ``column_types`` order) is reported and
  the row keeps its other values. Declared columns absent from a row are skipped.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pressrun.errors import DataError, InvalidValueError

__all__ = [
    "ColumnLayout",
    "ColumnType",
    "apply_column_types",
    "convert_value",
    "not_an_object_error",
    "parse_column_types",
]


class ColumnType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"


_ALIASES = {"str": ColumnType.STRING, "float": ColumnType.NUMBER, "int": ColumnType.INTEGER, "bool": ColumnType.BOOLEAN}
VALID_TYPE_NAMES = [t.value for t in ColumnType]

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)  # \d would match any script's digits
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})
# Past 1e308 a float is infinite; refusing earlier also keeps int("1e999999") from eating memory.
_MAX_EXPONENT = 308
_EXPECTED = {
    ColumnType.STRING: "is not a string",
    ColumnType.NUMBER: "is not a number",
    ColumnType.INTEGER: "is not an integer (expected a whole number such as 12)",
    ColumnType.DATE: "is not a date (expected YYYY-MM-DD)",
    ColumnType.DATETIME: "is not a datetime (expected ISO 8601 such as 2024-03-05T14:30:00)",
    ColumnType.BOOLEAN: "is not a boolean (expected true/false, yes/no, y/n or 1/0)",
}


def parse_column_types(column_types: Mapping[str, str], *, file: str) -> dict[str, ColumnType]:
    """Validate ``{column: type name}``; raise :class:`DataError` naming the column, the type and the valid ones."""
    parsed: dict[str, ColumnType] = {}
    for column, name in column_types.items():
        key = str(name).strip().lower()
        try:
            parsed[column] = _ALIASES.get(key) or ColumnType(key)
        except ValueError:
            valid = ", ".join(VALID_TYPE_NAMES)
            raise DataError(
                f"{file}: column {column!r} has unknown type {name!r}; valid types are {valid}"
                " (aliases: str, float, int, bool)",
                file=file,
                field="column_types",
                column=column,
                value=name,
                valid=VALID_TYPE_NAMES,
            ) from None
    return parsed


def convert_value(column: str, value: Any, column_type: ColumnType) -> Any:
    """Convert one value to ``column_type``, or raise :class:`InvalidValueError` naming column and value."""
    if column_type is ColumnType.STRING:
        return _to_string(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _CONVERTERS[column_type](value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, AttributeError, ArithmeticError):
        raise InvalidValueError(
            f"column {column!r}: {_show(value)} {_EXPECTED[column_type]}",
            column=column,
            value=value if isinstance(value, str | int | float | bool) else str(value),
            expected=column_type.value,
        ) from None


def apply_column_types(values: dict[str, Any], column_types: Mapping[str, ColumnType]) -> InvalidValueError | None:
    """Convert the typed columns of one row in place; return the first conversion error, if any."""
    for column, column_type in column_types.items():
        container, key = _locate(values, column)
        if container is None:
            continue
        try:
            container[key] = convert_value(column, container[key], column_type)
        except InvalidValueError as exc:
            return exc
    return None


@dataclass(frozen=True)
class ColumnLayout:
    """Validated header columns and where each one lands in a row's (possibly nested) values."""

    names: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...]
    nested: bool

    @classmethod
    def from_header(cls, cells: Sequence[Any], *, file: str, where: str) -> ColumnLayout:
        """Check names (non-empty, unique, no value/group clash). ``where`` is e.g. ``"line 1"``.

        Trailing empty header cells are dropped: spreadsheets export them for formatted empty columns.
        """
        names = [("" if cell is None else str(cell)).strip() for cell in cells]
        while names and not names[-1]:
            names.pop()
        seen: dict[str, int] = {}
        for position, name in enumerate(names, 1):
            if not name:
                raise DataError(
                    f"{file} {where}: column {position} has no name; every column needs a header",
                    file=file,
                    column=position,
                )
            if name in seen:
                raise DataError(
                    f"{file} {where}: column {name!r} appears twice (columns {seen[name]} and {position});"
                    " column names must be unique",
                    file=file,
                    column=name,
                    positions=[seen[name], position],
                )
            if "" in name.split("."):
                raise DataError(
                    f"{file} {where}: column {name!r} (column {position}) has an empty part in its dotted"
                    " name; write nested names like user.address.city",
                    file=file,
                    column=name,
                )
            seen[name] = position
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts)):
                group = ".".join(parts[:depth])
                if group in seen:
                    raise DataError(
                        f"{file} {where}: columns {group!r} (column {seen[group]}) and {name!r} (column"
                        f" {seen[name]}) clash: {group!r} cannot be both a value and a group of nested"
                        " values; rename one of them",
                        file=file,
                        column=name,
                        value=group,
                    )
        paths = tuple(tuple(name.split(".")) for name in names)
        return cls(tuple(names), paths, any(len(p) > 1 for p in paths))

    def extra_fields_error(self, fields: Sequence[Any], number: int, line: int, file: str) -> InvalidValueError | None:
        """The error for a record with more non-empty fields than the header (trailing empties are fine)."""
        width = used = len(self.names)
        for position in range(len(fields), width, -1):
            if fields[position - 1] not in ("", None):
                used = position
                break
        if used == width:
            return None
        return InvalidValueError(
            f"row {number} has {used} fields but the header has {width}",
            row=number,
            line=line,
            file=file,
            value=used,
            expected=width,
        )

    def build(self, fields: Sequence[Any]) -> dict[str, Any]:
        """Field list -> values. Fields past the header are ignored; missing trailing fields stay absent."""
        if not self.nested:
            return dict(zip(self.names, fields, strict=False))
        values: dict[str, Any] = {}
        for path, field in zip(self.paths, fields, strict=False):
            node = values
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = field
        return values


def not_an_object_error(value: Any, number: int, line: int, file: str) -> InvalidValueError:
    """The error for a JSON/JSONL row that is not an object: ``row 3 is a number, expected an object``."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int | float):
        kind = "a number"
    else:
        kind = {str: "a string", list: "an array"}.get(type(value), "null")
    return InvalidValueError(
        f"row {number} is {kind}, expected an object", row=number, line=line, file=file, expected="object"
    )


def _locate(values: dict[str, Any], column: str) -> tuple[dict[str, Any] | None, str]:
    # A literal key wins, so a JSON key that itself contains dots can still be typed.
    if column in values:
        return values, column
    *groups, key = column.split(".")
    node: Any = values
    for part in groups:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and key in node:
        return node, key
    return None, column


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _parse_decimal(text: str) -> Decimal:
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(text)
    number = Decimal(text)
    if number.adjusted() > _MAX_EXPONENT:
        raise ValueError(text)
    return number


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(value)
        return value
    number = _parse_decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


def _to_integer(value: Any) -> int:
    number = _to_number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return number


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time():
            raise ValueError(value)
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not _DATE_RE.fullmatch(value):
        raise ValueError(value)
    return dt.date.fromisoformat(value)


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(value)


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = value.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(value)


_CONVERTERS = {
    ColumnType.NUMBER: _to_number,
    ColumnType.INTEGER: _to_integer,
    ColumnType.DATE: _to_date,
    ColumnType.DATETIME: _to_datetime,
    ColumnType.BOOLEAN: _to_boolean,
}
