"""open_rows / RowSource over real files written to tmp_path: CSV, JSON, JSONL, XLSX."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest

from pressrun.data import Row, RowSource, open_rows, readers
from pressrun.errors import DataError, InvalidValueError, UsageError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def rows(source: RowSource) -> list[Row]:
    return list(source)


def data_error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        source = open_rows(path, **kwargs)  # type: ignore[arg-type]
        source.count()
    return info.value


# --- opening -------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = data_error(tmp_path / "data.csv")
    assert str(error) == "data.csv: file not found"
    assert error.code == "data_error"
    assert error.details == {"file": "data.csv"}


def test_directory_is_not_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "data.csv").mkdir()
    assert str(data_error(tmp_path / "data.csv")) == "data.csv is a directory, not a data file"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "data.txt",
            "data.txt: unknown data file type '.txt'; valid extensions are .csv, .tsv, .json, .jsonl, .ndjson, .xlsx",
        ),
        ("data", "data: no file extension; valid extensions are .csv, .tsv, .json, .jsonl, .ndjson, .xlsx"),
    ],
)
def test_unknown_extension_lists_the_valid_ones(tmp_path: Path, name: str, message: str) -> None:
    error = data_error(write(tmp_path, name, "a\n1\n"))
    assert str(error) == message
    assert error.details["valid"] == [".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".xlsx"]


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "export.txt", "a;b\n1;2\n"), format="CSV")
    assert source.format == "csv"
    assert rows(source) == [Row(1, {"a": "1", "b": "2"}, None, 2)]
    assert open_rows(write(tmp_path, "x.dat", '{"a": 1}\n'), format="ndjson").format == "jsonl"


def test_bad_format_argument_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        open_rows(write(tmp_path, "data.csv", "a\n1\n"), format="yaml")
    assert str(info.value) == "format: 'yaml' is not a data format; valid formats are csv, json, jsonl, xlsx"
    assert info.value.details["field"] == "format"


def test_unknown_column_type_fails_at_open_time(tmp_path: Path) -> None:
    error = data_error(write(tmp_path, "data.csv", "price\n1\n"), column_types={"price": "money"})
    assert str(error).startswith("data.csv: column 'price' has unknown type 'money'; valid types are string,")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.csv", "", "data.csv is empty: no header row"),
        ("data.csv", "\ufeff\n\n  \n", "data.csv is empty: no header row"),
        ("data.csv", "name,email\n", "data.csv has a header but no data rows"),
        ("data.csv", "name,email\n\n,\n", "data.csv has a header but no data rows"),
        ("data.json", "", "data.json is empty: expected an array of objects"),
        ("data.json", " [ ]\n", "data.json has no rows: the array is empty"),
        ("data.jsonl", "\n\n", "data.jsonl is empty: no rows"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    error = data_error(write(tmp_path, name, content))
    assert str(error) == message
    assert error.details["file"] == name


def test_open_reads_the_header_only_and_source_is_reiterable(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "name,age\nAnn,31\nBob,42\n")
    source = open_rows(path)
    assert (source.path, source.format, source.columns) == (path, "csv", ["name", "age"])
    first, second = rows(source), rows(source)
    assert first == second == [Row(1, {"name": "Ann", "age": "31"}, None, 2), Row(2, {"name": "Bob", "age": "42"}, None, 3)]
    assert source.count() == 2


# --- CSV -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.csv", "name,city\nAnn,Paris\n"),
        ("data.csv", "\ufeffname,city\r\nAnn,Paris\r\n"),
        ("data.csv", "name;city\nAnn;Paris\n"),
        ("data.csv", "name\tcity\nAnn\tParis\n"),
        ("data.tsv", "name\tcity\nAnn\tParis\n"),
        ("data.csv", '"name";"city"\n"Ann";"Paris"\n'),
    ],
)
def test_csv_encodings_and_delimiters(tmp_path: Path, name: str, content: str) -> None:
    assert rows(open_rows(write(tmp_path, name, content))) == [Row(1, {"name": "Ann", "city": "Paris"}, None, 2)]


def test_csv_delimiter_is_sniffed_outside_quotes(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "data.csv", '"last, first";note\n"Doe, J";a,b\n'))
    assert source.columns == ["last, first", "note"]
    assert rows(source)[0].values == {"last, first": "Doe, J", "note": "a,b"}


def test_tsv_is_always_tab_separated(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "data.tsv", "note\na,b\n"))
    assert rows(source)[0].values == {"note": "a,b"}


def test_csv_blank_lines_and_quoted_newlines_keep_row_numbers_and_lines(tmp_path: Path) -> None:
    content = '\nname,bio\n\nAnn,"line 1\nline 2"\n,\nBob,short\n\n\n"Cy","a\r\nb"\nDee,x\n'
    got = [(row.number, row.line, row.values["name"]) for row in open_rows(write(tmp_path, "data.csv", content))]
    assert got == [(1, 4, "Ann"), (2, 7, "Bob"), (3, 10, "Cy"), (4, 12, "Dee")]


def test_csv_values_are_strings_and_empty_cells_empty_strings(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "data.csv", "a,b,c\n1,,2.5\n"))
    assert rows(source)[0].values == {"a": "1", "b": "", "c": "2.5"}


def test_csv_row_with_more_fields_gets_an_error_and_the_run_goes_on(tmp_path: Path) -> None:
    content = "a,b,c,d\n" + "1,2,3,4\n" * 6 + "1,2,3,4,5\n" + "1,2,3,4,,\n"
    result = rows(open_rows(write(tmp_path, "data.csv", content)))
    assert [row.error for row in result[:6]] == [None] * 6
    error = result[6].error
    assert isinstance(error, InvalidValueError)
    assert str(error) == "row 7 has 5 fields but the header has 4"
    assert error.details == {"row": 7, "line": 8, "file": "data.csv", "value": 5, "expected": 4}
    assert result[6].values == {"a": "1", "b": "2", "c": "3", "d": "4"}
    assert result[7].error is None  # trailing empty fields (spreadsheet export) are harmless


def test_csv_row_with_fewer_fields_lacks_those_keys(tmp_path: Path) -> None:
    result = rows(open_rows(write(tmp_path, "data.csv", "a,b,c\n1,2\n")))
    assert result == [Row(1, {"a": "1", "b": "2"}, None, 2)]


def test_csv_trailing_empty_header_columns_are_ignored(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "data.csv", "a,b,,\n1,2,,\n"))
    assert source.columns == ["a", "b"]
    assert rows(source) == [Row(1, {"a": "1", "b": "2"}, None, 2)]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,email,name", "data.csv line 2: column 'name' appears twice (columns 1 and 3); column names must be unique"),
        ("name,,email", "data.csv line 2: column 2 has no name; every column needs a header"),
        (
            "user,user.name",
            "data.csv line 2: columns 'user' (column 1) and 'user.name' (column 2) clash: 'user' cannot be both"
            " a value and a group of nested values; rename one of them",
        ),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, message: str) -> None:
    assert str(data_error(write(tmp_path, "data.csv", f"\n{header}\n1,2,3\n"))) == message


def test_csv_dotted_columns_become_nested_values(tmp_path: Path) -> None:
    content = "id,user.name,user.address.city\n1,Ann,Paris\n"
    source = open_rows(write(tmp_path, "data.csv", content))
    assert source.columns == ["id", "user.name", "user.address.city"]
    assert rows(source)[0].values == {"id": "1", "user": {"name": "Ann", "address": {"city": "Paris"}}}


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (
            'a,b\n1,2\n3,"unterminated\n5,6\n7,8\n',
            'data.csv line 3: a quoted field starts on this line but its closing quote (") is missing',
            3,
        ),
        (
            'a,b\n1,2\n3,"x"y\n',
            'data.csv line 3: a closing quote (") is followed by more text; write a quote inside a quoted field as ""',
            3,
        ),
        (
            'a,b\n1,"open\n' + ("z" * 999 + "\n") * 140 + "3,4\n",
            'data.csv line 2: a field is longer than 131072 characters; is a quote (") left open?',
            2,
        ),
        (
            "a,b\n1,2\n\n3,4\x00\n",
            "data.csv line 4: contains a NUL byte, so it is not a text CSV file; save it as CSV UTF-8",
            4,
        ),
    ],
)
def test_csv_malformed_is_a_data_error_with_the_line(tmp_path: Path, content: str, message: str, line: int) -> None:
    error = data_error(write(tmp_path, "data.csv", content))
    assert str(error) == message
    assert error.details == {"file": "data.csv", "line": line}


def test_csv_malformed_rows_after_good_ones_fail_the_iteration(tmp_path: Path) -> None:
    source = open_rows(write(tmp_path, "data.csv", 'a\n1\n2\n"3\n'))
    seen: list[int] = []
    with pytest.raises(DataError, match="data.csv line 4:"):
        for row in source:
            seen.append(row.number)
    assert seen == [1, 2]


def test_csv_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    content = "name,city\nAnn,Paris\n\nJos\xe9,Lyon\n".encode("latin-1")
    error = data_error(write(tmp_path, "data.csv", content))
    assert str(error) == "data.csv line 4: not valid UTF-8 (byte 0xe9 at offset 24); save the file as UTF-8"
    assert error.details == {"file": "data.csv", "line": 4}


def test_csv_not_utf8_far_into_a_big_file(tmp_path: Path) -> None:
    body = "".join(f"{i},caf\u00e9\n" for i in range(20_000)).encode()
    path = write(tmp_path, "data.csv", b"id,name\n" + body + b"20000,caf\xe9\n")
    source = open_rows(path)
    with pytest.raises(DataError) as info:
        source.count()
    assert str(info.value).startswith("data.csv line 20002: not valid UTF-8 (byte 0xe9 at offset ")


def test_csv_column_types(tmp_path: Path) -> None:
    content = "name,price,qty,when,ok,user.age\nAnn,9.90,2,2024-03-05,yes,31\nBob,,3.0,,no,\n"
    types = {"price": "number", "qty": "int", "when": "date", "ok": "bool", "user.age": "integer"}
    result = rows(open_rows(write(tmp_path, "data.csv", content), column_types=types))
    assert result[0].values == {
        "name": "Ann",
        "price": 9.9,
        "qty": 2,
        "when": dt.date(2024, 3, 5),
        "ok": True,
        "user": {"age": 31},
    }
    assert result[1].values == {"name": "Bob", "price": None, "qty": 3, "when": None, "ok": False, "user": {"age": None}}


def test_csv_bad_typed_value_is_a_row_error(tmp_path: Path) -> None:
    content = "name,price\nAnn,1\nBob,abc\nCy,3\n"
    source = open_rows(write(tmp_path, "data.csv", content), column_types={"price": "number"})
    result = rows(source)
    assert [row.error for row in (result[0], result[2])] == [None, None]
    error = result[1].error
    assert isinstance(error, InvalidValueError)
    assert str(error) == "column 'price': 'abc' is not a number"
    assert error.details == {
        "column": "price",
        "value": "abc",
        "expected": "number",
        "row": 2,
        "line": 3,
        "file": "data.csv",
    }
    assert result[1].values == {"name": "Bob", "price": "abc"}
    assert source.count() == 3  # counting checks structure only


# --- JSON ----------------------------------------------------------------------------------------------


def test_json_array_of_objects(tmp_path: Path) -> None:
    content = '[\n  {"name": "Ann", "user": {"age": "31"}},\n\n  {"name": "Bob",\n   "user": {"age": 42}}\n]\n'
    source = open_rows(write(tmp_path, "data.json", content), column_types={"user.age": "integer"})
    assert source.columns is None
    assert rows(source) == [
        Row(1, {"name": "Ann", "user": {"age": 31}}, None, 2),
        Row(2, {"name": "Bob", "user": {"age": 42}}, None, 4),
    ]


def test_json_non_object_element_is_a_row_error(tmp_path: Path) -> None:
    result = rows(open_rows(write(tmp_path, "data.json", '[{"a": 1}, {"a": 2},\n 3, [1], null]')))
    assert [str(row.error) if row.error else None for row in result] == [
        None,
        None,
        "row 3 is a number, expected an object",
        "row 4 is an array, expected an object",
        "row 5 is null, expected an object",
    ]
    assert result[2].values == {}
    assert result[2].error.details == {"row": 3, "line": 2, "file": "data.json", "expected": "object"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"rows": [{"a": 1}]}',
            'data.json: the top level is an object, expected an array of objects like [{...}, {...}] (a wrapper'
            ' such as {"rows": [...]} is not supported); if it holds one object per line, name it .jsonl',
        ),
        (
            "42",
            'data.json: the top level is a number, expected an array of objects like [{...}, {...}] (a wrapper'
            ' such as {"rows": [...]} is not supported)',
        ),
        ('[{"a": 1},\n {"a": 2,}]', "data.json line 2: not valid JSON (Expecting property name enclosed in double quotes)"),
        ('[{"a": 1},\n\n {"a": 2}', "data.json line 3: expected ',' or ']' after row 2, the file ends"),
        ('[{"a": 1}\n {"a": 2}]', "data.json line 2: expected ',' or ']' after row 1, found '{'"),
        ('[{"a": 1},\n]', "data.json line 2: a trailing comma before ]"),
        ('[{"a": 1}]\n[]', "data.json line 2: unexpected content after the closing ]"),
        ('[{"a": 1},\n', "data.json line 2: the file ends before the closing ]"),
        ('[{"a": 1},\n{"a": "unterminated}]', "data.json line 2: not valid JSON (Unterminated string starting at)"),
        ('[{"a": 1},\n{"a": "unterminated}]\n', "data.json line 2: not valid JSON (Invalid control character at)"),
    ],
)
def test_json_unusable_file_is_a_data_error(tmp_path: Path, content: str, message: str) -> None:
    assert str(data_error(write(tmp_path, "data.json", content))) == message


def test_json_decodes_elements_split_across_any_window_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = [
        {"n": 12345, "f": -1.5e-3, "s": "caf\u00e9 \\ \" \u2028", "t": True, "z": None, "l": [1, 22, 333]},
        {"big": "x" * 300, "nested": {"deep": [{"k": 10}]}},
        {"u": "\U0001f600", "n": 0},
    ] * 3
    for ensure_ascii in (False, True):  # True writes \ud83d\ude00-style escapes that can be split too
        path = write(tmp_path, "data.json", json.dumps(data, indent=1, ensure_ascii=ensure_ascii))
        for chunk in (1, 2, 3, 7, 64):
            monkeypatch.setattr(readers, "_CHUNK_CHARS", chunk)
            assert [row.values for row in open_rows(path)] == data


def test_json_top_level_numbers_split_across_window_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "data.json", '[{"a": 1},1.5e-3,-12,0.25E+2,{"b": 2}, 7]')
    for chunk in (1, 2, 3, 5):
        monkeypatch.setattr(readers, "_CHUNK_CHARS", chunk)
        result = rows(open_rows(path))
        assert [row.values for row in result] == [{"a": 1}, {}, {}, {}, {"b": 2}, {}]
        assert [str(row.error) for row in result if row.error] == [
            f"row {n} is a number, expected an object" for n in (2, 3, 4, 6)
        ]


def test_json_element_larger_than_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_MAX_ELEMENT_CHARS", 1000)
    source = open_rows(write(tmp_path, "data.json", '[{"a": 1},\n{"a": "' + "x" * 200_000 + '"}]'))
    with pytest.raises(DataError) as info:
        source.count()
    assert str(info.value) == "data.json line 2: a row is larger than 1000 characters"


@pytest.mark.parametrize("name", ["data.json", "data.jsonl"])
def test_json_files_may_start_with_a_bom_and_paths_may_be_strings(tmp_path: Path, name: str) -> None:
    content = '\ufeff[{"a": 1}]' if name == "data.json" else '\ufeff{"a": 1}\n'
    assert rows(open_rows(str(write(tmp_path, name, content)))) == [Row(1, {"a": 1}, None, 1)]


# --- JSONL ---------------------------------------------------------------------------------------------


def test_jsonl_rows_blank_lines_and_bad_lines(tmp_path: Path) -> None:
    content = '{"a": 1}\n\n{"a": "2"}\r\n{"a": 3,}\n"text"\n   \n{"a": 5}'
    result = rows(open_rows(write(tmp_path, "data.ndjson", content), column_types={"a": "int"}))
    assert [(row.number, row.line, row.values) for row in result] == [
        (1, 1, {"a": 1}),
        (2, 3, {"a": 2}),
        (3, 4, {}),
        (4, 5, {}),
        (5, 7, {"a": 5}),
    ]
    assert str(result[2].error) == (
        "row 3 (line 4) is not valid JSON: Expecting property name enclosed in double quotes at column 9"
    )
    assert result[2].error.details == {"row": 3, "line": 4, "file": "data.ndjson"}  # type: ignore[union-attr]
    assert str(result[3].error) == "row 4 is a string, expected an object"
    assert [row.error for row in (result[0], result[1], result[4])] == [None, None, None]


def test_jsonl_bad_encoding(tmp_path: Path) -> None:
    error = data_error(write(tmp_path, "data.jsonl", b'{"a": 1}\n{"a": "\xff"}\n'))
    assert str(error) == "data.jsonl line 2: not valid UTF-8 (byte 0xff at offset 16); save the file as UTF-8"


# --- XLSX ----------------------------------------------------------------------------------------------


def write_xlsx(path: Path, sheet_rows: list[list[object]], *, first_sheet: str = "Data") -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = first_sheet
    for sheet_row in sheet_rows:
        sheet.append(sheet_row)
    workbook.create_sheet("Other").append(["ignored"])
    workbook.save(path)
    return path


def test_xlsx_first_sheet_typed_cells_and_empty_rows(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "data.xlsx",
        [
            [None, None],
            ["name", "price", "when", "user.age", None],
            ["Ann", 9.5, dt.datetime(2024, 3, 5), 31.0],
            [None, None, None],
            ["Bob", 3, None, 42],
        ],
    )
    source = open_rows(path, column_types={"user.age": "integer", "when": "date"})
    assert source.format == "xlsx"
    assert source.columns == ["name", "price", "when", "user.age"]
    result = rows(source)
    assert result == [
        Row(1, {"name": "Ann", "price": 9.5, "when": dt.date(2024, 3, 5), "user": {"age": 31}}, None, 3),
        Row(2, {"name": "Bob", "price": 3, "when": None, "user": {"age": 42}}, None, 5),
    ]
    assert type(result[0].values["user"]["age"]) is int
    assert source.count() == 2


def test_xlsx_untyped_empty_cells_are_empty_strings_and_dates_stay_datetimes(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "data.xlsx", [["a", "b", "c"], [dt.datetime(2024, 3, 5, 14, 30), None, "x"]])
    assert rows(open_rows(path))[0].values == {"a": dt.datetime(2024, 3, 5, 14, 30), "b": "", "c": "x"}


def test_xlsx_row_errors(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "data.xlsx", [["a", "n"], [1, "x"], [1, 2, 3]])
    result = rows(open_rows(path, column_types={"n": "number"}))
    assert str(result[0].error) == "column 'n': 'x' is not a number"
    assert result[0].error.details["line"] == 2  # type: ignore[union-attr]
    assert str(result[1].error) == "row 2 has 3 fields but the header has 2"


def test_xlsx_bad_header(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "data.xlsx", [[], ["id", "id"], [1, 2]])
    assert str(data_error(path)) == (
        "data.xlsx row 2: column 'id' appears twice (columns 1 and 2); column names must be unique"
    )


@pytest.mark.parametrize(
    ("sheet_rows", "message"),
    [([], "data.xlsx is empty: no header row"), ([["a", "b"]], "data.xlsx has a header but no data rows")],
)
def test_xlsx_empty(tmp_path: Path, sheet_rows: list[list[object]], message: str) -> None:
    assert str(data_error(write_xlsx(tmp_path / "data.xlsx", sheet_rows))) == message


@pytest.mark.parametrize("content", [b"name,city\nAnn,Paris\n", b"PK\x03\x04 broken zip", b""])
def test_not_an_xlsx_file(tmp_path: Path, content: bytes) -> None:
    error = data_error(write(tmp_path, "data.xlsx", content))
    assert str(error) == "data.xlsx is not a valid .xlsx workbook; save it as Excel Workbook (.xlsx)"
    assert isinstance(error.__cause__, Exception)


def test_xlsx_empty_trailing_and_merged_cells_are_empty_strings(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for sheet_row in (["name", "age", "nick", "note"], ["Ann", 3, "A", "x"], ["Bob", 4], ["Cy", None, "C"],
                      ["Di", 5, "merged", None]):
        sheet.append(sheet_row)
    sheet.merge_cells("C5:D5")
    workbook.save(tmp_path / "data.xlsx")
    result = rows(open_rows(tmp_path / "data.xlsx"))
    assert [r.error for r in result] == [None, None, None, None]
    assert [r.values for r in result[1:]] == [
        {"name": "Bob", "age": 4, "nick": "", "note": ""},
        {"name": "Cy", "age": "", "nick": "C", "note": ""},
        {"name": "Di", "age": 5, "nick": "merged", "note": ""},
    ]


def test_xlsx_table_starting_in_column_b(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "data.xlsx", [[], [None, "name", "age"], [None, "Ann", 7], ["stray", "Bob", 8]])
    source = open_rows(path)
    result = rows(source)
    assert source.columns == ["name", "age"]
    assert result[0] == Row(1, {"name": "Ann", "age": 7}, None, 3)
    assert str(result[1].error) == "row 2 has a value in column A, left of the table's first column (B), which has no header"


def test_xlsx_midnight_in_a_date_formatted_cell_is_a_date(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["day", "stamp", "plain"])
    sheet.append([dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5, 9, 30)])
    sheet["A2"].number_format = "yyyy-mm-dd"
    sheet["B2"].number_format = "yyyy-mm-dd hh:mm"
    sheet["C2"].number_format = "yyyy-mm-dd"
    workbook.save(tmp_path / "data.xlsx")
    values = rows(open_rows(tmp_path / "data.xlsx"))[0].values
    assert values == {"day": dt.date(2024, 3, 5), "stamp": dt.datetime(2024, 3, 5), "plain": dt.datetime(2024, 3, 5, 9, 30)}
    assert type(values["day"]) is dt.date


def test_jsonl_lines_the_decoder_will_not_read_fail_their_own_row(tmp_path):
    """A >4,300-digit number or 100,000-deep nesting raised out of the reader (a 500 from the API, or
    "no data rows" when it was a later row): each is its own row's error, with its line."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": ' + "9" * 5000 + "}\n" + '{"a": ' + "[" * 100_000 + "]" * 100_000 + '}\n{"a": 4}\n')
    rows = list(open_rows(path))
    assert [row.values for row in rows if row.error is None] == [{"a": 1}, {"a": 4}]
    assert [(row.number, row.line) for row in rows if row.error] == [(2, 2), (3, 3)]
    assert "more digits" in rows[1].error.message and "nested too deeply" in rows[2].error.message


def test_a_json_array_with_an_unreadable_element_is_a_data_error_naming_the_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"a": 1},\n {"a": ' + "9" * 5000 + "}]")
    with pytest.raises(DataError, match="more digits"):
        list(open_rows(path))


def small_workbook(path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["name"])
    book.active.append(["Ada"])
    book.save(path)
    return path


def test_an_xlsx_zip_bomb_is_refused_before_it_is_parsed(tmp_path):
    """A 1.9 MB workbook with 1.5 GB of shared strings took 2.5 GB and 23 s to parse."""
    import zipfile

    bomb = tmp_path / "bomb.xlsx"
    source_path = small_workbook(tmp_path / "ok.xlsx")
    with zipfile.ZipFile(source_path) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member, source.read(member))
        target.writestr("xl/padding.xml", b"<x>" + b" " * (20 * 2**20) + b"</x>")  # 20 MiB from ~20 KiB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError, match="would expand .* times"):
        list(open_rows(bomb))
    assert [row.values for row in open_rows(tmp_path / "ok.xlsx")] == [{"name": "Ada"}]


def test_an_xlsx_past_the_uncompressed_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_XLSX_UNCOMPRESSED", 1000)
    with pytest.raises(DataError, match="uncompressed, more than 1,000"):
        list(open_rows(small_workbook(tmp_path / "ok.xlsx")))
