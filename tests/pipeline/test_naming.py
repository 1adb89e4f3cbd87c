"""Output file names: safe on every filesystem, unique, and always carrying the run's extension."""

from __future__ import annotations

import pytest

from pressrun.models import OutputFormat
from pressrun.naming import OutputNamer, safe_stem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("COM1", "_COM1"),
        ("CONIN$", "_CONIN$"),
        ("conout$", "_conout$"),
        ("CONOUT$.log", "_CONOUT$.log"),
        ("console", "console"),
        ("a/b", "a-b"),
    ],
)
def test_safe_stem_prefixes_windows_reserved_names(text, expected):
    assert safe_stem(text) == expected


@pytest.mark.parametrize(
    ("rendered", "fmt", "expected"),
    [
        ("card.jpg", OutputFormat.PNG, "card.png"),  # a wrong image extension is replaced by the run's
        ("card.PNG", OutputFormat.PNG, "card.png"),
        ("card.pdf", OutputFormat.JPEG, "card.jpg"),
        ("card.v2", OutputFormat.PNG, "card.v2.png"),  # not an output extension: part of the name
        ("card", OutputFormat.WEBP, "card.webp"),
    ],
)
def test_a_known_extension_in_the_pattern_is_replaced_by_the_runs(rendered, fmt, expected):
    assert OutputNamer(fmt, 1).assign(rendered, 1) == expected


def test_names_differing_only_in_extension_or_case_stay_unique():
    namer = OutputNamer(OutputFormat.PNG, 3)
    assert [namer.assign(n, i) for i, n in enumerate(["x.png", "x.jpg", "X"], 1)] == ["x.png", "x-2.png", "X-3.png"]


def test_reserved_names_are_never_given_to_a_row():
    namer = OutputNamer(OutputFormat.PDF, 2, reserved=["1.pdf", "ALL.pdf"])
    assert namer.assign(None, 1) == "1-2.pdf"
    assert namer.assign("all", 2) == "all-2.pdf"
