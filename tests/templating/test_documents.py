"""build_document: a row's HTML wrapped into the document Chromium loads, in time linear in its size."""

from __future__ import annotations

import time

import pytest

from pressrun.templating.bundle import build_document


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<p>x</p>", '<!doctype html><html><head><meta charset="utf-8"><S></head><body><p>x</p></body></html>'),
        ("<html><body>x</body></html>", "<html><head><S></head><body>x</body></html>"),
        ("<HTML lang=en><HEAD\n data-a='1'><title>t</title></HEAD>", "<HTML lang=en><HEAD\n data-a='1'><S><title>t</title></HEAD>"),
        ("<header>not a head</header>", '<!doctype html><html><head><meta charset="utf-8"><S></head><body><header>not a head</header></body></html>'),
        ("<html><head/>x", "<html><head><S></head><head/>x"),
    ],
)
def test_the_base_style_goes_first_in_the_documents_head(body, expected):
    style = "<style>html,body{margin:0;padding:0}</style>"
    assert build_document(body, stylesheet=False) == expected.replace("<S>", style)


@pytest.mark.parametrize("tag", ["<head ", "<html ", "<HEAD\t"])
def test_unclosed_start_tags_take_linear_time(tag):
    """'{{ ("<head " * 20000) | safe }}' froze a server for 14 s: the tag regex backtracked over every
    unclosed tag in turn (quadratic). Compared with a benign document of the same length, side by side."""
    hostile = tag * 50_000
    benign = "x" * len(hostile)

    def best_of_three(text: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            build_document(text, stylesheet=False)
            times.append(time.perf_counter() - started)
        return min(times)

    assert best_of_three(hostile) < 50 * best_of_three(benign) + 0.005
