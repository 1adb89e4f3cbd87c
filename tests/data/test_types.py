"""Column types and header layout (pure code): table-driven tests."""

from __future__ import annotations

import datetime as dt

import pytest

from pressrun.data.types import (
    ColumnLayout,
    ColumnType,
    apply_column_types,
    convert_value,
    not_an_object_error,
    parse_column_types,
)
from pressrun.errors import DataError, InvalidValueError

# --- type names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("string", ColumnType.STRING),
        ("STR", ColumnType.STRING),
        ("number", ColumnType.NUMBER),
        ("Float", ColumnType.NUMBER),
        ("integer", ColumnType.INTEGER),
        ("int", ColumnType.INTEGER),
        (" date ", ColumnType.DATE),
        ("DateTime", ColumnType.DATETIME),
        ("boolean", ColumnType.BOOLEAN),
        ("bool", ColumnType.BOOLEAN),
    ],
)
def test_type_names_are_case_insensitive_with_aliases(name: str, expected: ColumnType) -> None:
    assert parse_column_types({"col": name}, file="data.csv") == {"col": expected}


def test_unknown_type_names_the_column_the_type_and_the_valid_ones() -> None:
    with pytest.raises(DataError) as info:
        parse_column_types({"price": "number", "qty": "money"}, file="data.csv")
    assert str(info.value) == (
        "data.csv: column 'qty' has unknown type 'money'; valid types are string, number, integer, date,"
        " datetime, boolean (aliases: str, float, int, bool)"
    )
    assert info.value.details["column"] == "qty"
    assert info.value.details["value"] == "money"
    assert info.value.details["valid"] == ["string", "number", "integer", "date", "datetime", "boolean"]


# --- conversions ---------------------------------------------------------------------------------------

N, INT, D, DT, B, S = (
    ColumnType.NUMBER,
    ColumnType.INTEGER,
    ColumnType.DATE,
    ColumnType.DATETIME,
    ColumnType.BOOLEAN,
    ColumnType.STRING,
)


@pytest.mark.parametrize(
    ("column_type", "value", "expected"),
    [
        (N, "12", 12),
        (N, " 12 ", 12),
        (N, "-3", -3),
        (N, "12.50", 12.5),
        (N, "12.00", 12),
        (N, ".5", 0.5),
        (N, "1e3", 1000),
        (N, "2.5E-1", 0.25),
        (N, "+7", 7),
        (N, 3, 3),
        (N, 2.0, 2.0),  # already a number (XLSX/JSON): left alone
        (INT, "12", 12),
        (INT, "12.0", 12),
        (INT, "-0", 0),
        (INT, 12.0, 12),  # XLSX float for an integer column
        (INT, 7, 7),
        (D, "2024-03-05", dt.date(2024, 3, 5)),
        (D, dt.datetime(2024, 3, 5), dt.date(2024, 3, 5)),
        (D, dt.date(2024, 3, 5), dt.date(2024, 3, 5)),
        (DT, "2024-03-05T14:30:00", dt.datetime(2024, 3, 5, 14, 30)),
        (DT, "2024-03-05 14:30", dt.datetime(2024, 3, 5, 14, 30)),
        (DT, "2024-03-05", dt.datetime(2024, 3, 5)),
        (DT, "2024-03-05T14:30:00Z", dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)),
        (DT, dt.date(2024, 3, 5), dt.datetime(2024, 3, 5)),
        (B, "true", True),
        (B, "YES", True),
        (B, "y", True),
        (B, "1", True),
        (B, "False", False),
        (B, "no", False),
        (B, "N", False),
        (B, "0", False),
        (B, True, True),
        (B, 0, False),
        (S, "abc", "abc"),
        (S, "", ""),
        (S, None, ""),
        (S, 12345, "12345"),
        (S, 12345.0, "12345"),
        (S, 1.5, "1.5"),
        (S, True, "true"),
        (S, dt.date(2024, 3, 5), "2024-03-05"),
    ],
)
def test_convert_value(column_type: ColumnType, value: object, expected: object) -> None:
    result = convert_value("col", value, column_type)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("column_type", [N, INT, D, DT, B])
@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_value_in_a_typed_column_is_none(column_type: ColumnType, value: object) -> None:
    assert convert_value("col", value, column_type) is None


@pytest.mark.parametrize(
    ("column_type", "value", "message"),
    [
        (N, "abc", "column 'price': 'abc' is not a number"),
        (N, "1,000", "column 'price': '1,000' is not a number"),
        (N, "nan", "column 'price': 'nan' is not a number"),
        (N, "inf", "column 'price': 'inf' is not a number"),
        (N, "1_000", "column 'price': '1_000' is not a number"),
        (N, "1e999", "column 'price': '1e999' is not a number"),
        (N, "\u0661\u0662", "column 'price': '\u0661\u0662' is not a number"),
        (N, True, "column 'price': True is not a number"),
        (INT, "1.5", "column 'price': '1.5' is not an integer (expected a whole number such as 12)"),
        (INT, 1.5, "column 'price': 1.5 is not an integer (expected a whole number such as 12)"),
        (D, "05/03/2024", "column 'price': '05/03/2024' is not a date (expected YYYY-MM-DD)"),
        (D, "2024-02-30", "column 'price': '2024-02-30' is not a date (expected YYYY-MM-DD)"),
        (D, "20240305", "column 'price': '20240305' is not a date (expected YYYY-MM-DD)"),
        (D, "\u0662\u0660\u0662\u0664-03-05", "column 'price': '\u0662\u0660\u0662\u0664-03-05' is not a date (expected YYYY-MM-DD)"),
        (
            D,
            dt.datetime(2024, 3, 5, 14, 30),
            "column 'price': 2024-03-05 14:30:00 is not a date (expected YYYY-MM-DD)",
        ),
        (
            DT,
            "tomorrow",
            "column 'price': 'tomorrow' is not a datetime (expected ISO 8601 such as 2024-03-05T14:30:00)",
        ),
        (B, "maybe", "column 'price': 'maybe' is not a boolean (expected true/false, yes/no, y/n or 1/0)"),
        (B, 2, "column 'price': 2 is not a boolean (expected true/false, yes/no, y/n or 1/0)"),
        (B, [1], "column 'price': [1] is not a boolean (expected true/false, yes/no, y/n or 1/0)"),
    ],
)
def test_unconvertible_value_names_column_value_and_expectation(
    column_type: ColumnType, value: object, message: str
) -> None:
    with pytest.raises(InvalidValueError) as info:
        convert_value("price", value, column_type)
    assert str(info.value) == message
    assert info.value.details["column"] == "price"
    assert info.value.details["expected"] == column_type.value
    assert info.value.code == "invalid_value"


def test_error_details_stay_json_friendly_and_long_values_are_shortened() -> None:
    with pytest.raises(InvalidValueError) as info:
        convert_value("when", dt.datetime(2024, 3, 5, 1, 2), ColumnType.DATE)
    assert info.value.details["value"] == "2024-03-05 01:02:00"
    with pytest.raises(InvalidValueError) as info:
        convert_value("n", "x" * 100, ColumnType.NUMBER)
    assert str(info.value) == f"column 'n': '{'x' * 57}...' is not a number"
    assert info.value.details["value"] == "x" * 100


# --- applying types to a row ---------------------------------------------------------------------------


def test_apply_column_types_converts_nested_and_literal_dotted_keys_in_place() -> None:
    values = {"price": "9.50", "user": {"age": "31", "name": "Ann"}, "a.b": "1"}
    types = parse_column_types({"price": "number", "user.age": "integer", "a.b": "bool"}, file="d.csv")
    assert apply_column_types(values, types) is None
    assert values == {"price": 9.5, "user": {"age": 31, "name": "Ann"}, "a.b": True}


def test_apply_column_types_skips_columns_the_row_does_not_have() -> None:
    values = {"name": "Ann", "user": "not a dict"}
    types = parse_column_types({"missing": "integer", "user.age": "integer", "x.y.z": "date"}, file="d.csv")
    assert apply_column_types(values, types) is None
    assert values == {"name": "Ann", "user": "not a dict"}


def test_apply_column_types_returns_the_first_failure_and_keeps_the_raw_value() -> None:
    values = {"qty": "two", "price": "abc", "ok": "1"}
    types = parse_column_types({"ok": "int", "qty": "integer", "price": "number"}, file="d.csv")
    error = apply_column_types(values, types)
    assert isinstance(error, InvalidValueError)
    assert str(error).startswith("column 'qty': 'two' is not an integer")
    assert values == {"qty": "two", "price": "abc", "ok": 1}


# --- header layout -------------------------------------------------------------------------------------


def _layout(*names: object) -> ColumnLayout:
    return ColumnLayout.from_header(list(names), file="data.csv", where="line 1")


def test_layout_strips_names_and_drops_trailing_empty_header_cells() -> None:
    layout = _layout(" name", "email ", "", None)
    assert layout.names == ("name", "email")
    assert not layout.nested


def test_layout_builds_nested_values_from_dotted_names() -> None:
    layout = _layout("id", "user.name", "user.address.city", "user.address.zip")
    assert layout.build(["1", "Ann", "Paris", "75001"]) == {
        "id": "1",
        "user": {"name": "Ann", "address": {"city": "Paris", "zip": "75001"}},
    }
    # Fewer fields than columns: the missing keys are absent, not empty.
    assert layout.build(["2", "Bob"]) == {"id": "2", "user": {"name": "Bob"}}
    assert layout.build(["3"]) == {"id": "3"}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ("name", "email", "name"),
            "data.csv line 1: column 'name' appears twice (columns 1 and 3); column names must be unique",
        ),
        (("name", "", "email"), "data.csv line 1: column 2 has no name; every column needs a header"),
        (
            ("id", "user..name"),
            "data.csv line 1: column 'user..name' (column 2) has an empty part in its dotted name;"
            " write nested names like user.address.city",
        ),
        (
            ("user", "id", "user.name"),
            "data.csv line 1: columns 'user' (column 1) and 'user.name' (column 3) clash: 'user' cannot be both"
            " a value and a group of nested values; rename one of them",
        ),
        (
            ("a.b.c", "a.b"),
            "data.csv line 1: columns 'a.b' (column 2) and 'a.b.c' (column 1) clash: 'a.b' cannot be both"
            " a value and a group of nested values; rename one of them",
        ),
    ],
)
def test_bad_headers_name_the_column_and_its_position(names: tuple[str, ...], message: str) -> None:
    with pytest.raises(DataError) as info:
        _layout(*names)
    assert str(info.value) == message
    assert info.value.details["file"] == "data.csv"


def test_extra_fields_error_ignores_trailing_empty_fields() -> None:
    layout = _layout("a", "b")
    assert layout.extra_fields_error(["1", "2"], 1, 2, "data.csv") is None
    assert layout.extra_fields_error(["1"], 1, 2, "data.csv") is None
    assert layout.extra_fields_error(["1", "2", "", None], 1, 2, "data.csv") is None
    error = layout.extra_fields_error(["1", "2", "3", ""], 7, 9, "data.csv")
    assert error is not None
    assert str(error) == "row 7 has 3 fields but the header has 2"
    assert error.details == {"row": 7, "line": 9, "file": "data.csv", "value": 3, "expected": 2}


@pytest.mark.parametrize(
    ("value", "kind"),
    [(3, "a number"), (1.5, "a number"), ("x", "a string"), ([1], "an array"), (True, "a boolean"), (None, "null")],
)
def test_not_an_object_error_describes_the_json_value(value: object, kind: str) -> None:
    error = not_an_object_error(value, 3, 4, "data.json")
    assert str(error) == f"row 3 is {kind}, expected an object"
    assert error.details == {"row": 3, "line": 4, "file": "data.json", "expected": "object"}
