"""pressrun.toml: every mistake names the file, the key, the value and what is valid."""

from __future__ import annotations

import tomllib

import pytest

from pressrun.errors import TemplateError
from pressrun.templating.bundle import parse_manifest


def manifest(text: str):
    return parse_manifest(tomllib.loads(text), default_name="t")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[columns]\nname = "money"\n',
         ("pressrun.toml: columns.name = 'money' is not valid", "string, number, integer, date, datetime, boolean")),
        ('[columns]\ncustomer.age = "years"\n', ("pressrun.toml: columns.customer.age = 'years'",)),
        ('locale = "xx_YY"\n', ("pressrun.toml: locale = 'xx_YY' is not valid", "en_US")),
        ('[pdf]\npagesize = "a4"\n', ("pressrun.toml: pdf.pagesize = 'a4'", "page_size, landscape, margin_mm")),
        ("[pdf]\nlandscap = true\n", ("pressrun.toml: pdf.landscap = True", "page_size, landscape, margin_mm")),
    ],
)
def test_a_bad_manifest_is_blamed_on_pressrun_toml(text, fragments):
    with pytest.raises(TemplateError) as caught:
        manifest(text)
    for fragment in fragments:
        assert fragment in caught.value.message


def test_nested_column_tables_are_dotted_columns():
    parsed = manifest('[columns]\ncustomer.age = "integer"\n"customer.since" = "date"\nscore = "number"\n')
    assert parsed.column_types == {"customer.age": "integer", "customer.since": "date", "score": "number"}


def test_a_known_locale_and_pdf_keys_are_accepted():
    parsed = manifest('locale = "de_DE"\n[pdf]\npage_size = "A4"\nlandscape = true\nmargin_mm = 5\n')
    assert parsed.defaults.locale == "de_DE" and parsed.defaults.pdf.page_size == "a4" and parsed.defaults.pdf.landscape
