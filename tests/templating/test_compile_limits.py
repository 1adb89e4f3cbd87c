"""compile() raises only TemplateSyntaxError for templates nested beyond its limits, and quickly."""

from __future__ import annotations

import time

import pytest

from pressrun.errors import TemplateSyntaxError
from pressrun.templating import Engine
from pressrun.templating.pipes import MAX_BLOCK_DEPTH, MAX_EXPRESSION_DEPTH

TOO_DEEP = [
    # (template, words in the message) — each once made Python's compiler fail or take seconds
    ("{{ x" + "|e" * 300 + " }}", "nested more than 30 levels"),
    (("{{ x" + "|upper" * 190 + " }}") * 3, "nested more than 30 levels"),
    ("{{ x" + ".a" * 300 + " }}", "nested more than 30 levels"),
    ("{{ x" + "[0]" * 300 + " }}", "nested more than 30 levels"),
    ("{{ " + "not " * 300 + "x }}", "nested more than 30 levels"),
    ("{{ " + " + ".join(["x"] * 300) + " }}", "nested more than 30 levels"),
    ("{% set y = x" + "|e" * 300 + " %}", "nested more than 30 levels"),
    ("{% for a in b %}" * 21 + "{% endfor %}" * 21, "blocks are nested more than 20 deep"),
    ("{% if a %}" * 100 + "{% endif %}" * 100, "blocks are nested more than 20 deep"),
    ("{% with a = 1 %}" * 30 + "{% endwith %}" * 30, "blocks are nested more than 20 deep"),
    ("{{ " + "(" * 5000 + "x" + ")" * 5000 + " }}", "nested too deeply"),
]


@pytest.mark.parametrize(("template", "words"), TOO_DEEP)
def test_too_deep_is_a_quick_syntax_error(template: str, words: str) -> None:
    started_s = time.monotonic()
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile("ok\n" + template)
    assert time.monotonic() - started_s < 1
    assert words in caught.value.message
    assert caught.value.message.startswith("template.html")
    assert caught.value.details["file"] == "template.html"


def test_the_line_of_the_deep_expression_is_reported() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile("a\nb\n{{ x" + "|e" * 60 + " }}")
    assert caught.value.message.startswith("template.html line 3: an expression is nested more than")
    assert caught.value.details["line"] == 3


WITHIN_LIMITS = [
    "{{ x" + "|e" * (MAX_EXPRESSION_DEPTH - 1) + " }}",
    "{% for a in b %}{{ loop.index }}" * MAX_BLOCK_DEPTH + "{% else %}-{% endfor %}" * MAX_BLOCK_DEPTH,
    "{% if a %}" * MAX_BLOCK_DEPTH + "{% endif %}" * MAX_BLOCK_DEPTH,
    "{% if a %}1" + "{% elif a %}2" * 300 + "{% endif %}",  # elif is not nesting
]


@pytest.mark.parametrize("template", WITHIN_LIMITS)
def test_within_limits_compiles(template: str) -> None:
    started_s = time.monotonic()
    Engine().compile(template)
    assert time.monotonic() - started_s < 1
