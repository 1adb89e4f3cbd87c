"""compile() raises only TemplateSyntaxError for templates nested beyond its limits, and quickly."""

from __future__ import annotations

import time

import pytest

from pressrun.errors import TemplateSyntaxError
from pressrun.templating import Engine
from pressrun.templating.engine import MAX_TEMPLATE_CHARS
from pressrun.templating.pipes import MAX_BLOCK_DEPTH, MAX_ELIFS, MAX_EXPRESSION_DEPTH, MAX_TEMPLATE_TOKENS

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
    "{% if a %}1" + "{% elif a %}2" * MAX_ELIFS + "{% endif %}",
    ("{% if a %}1" + "{% elif a %}2" * (MAX_ELIFS // 2) + "{% endif %}") * 3,  # counted per if
    "{% if a %}{% if b %}" + "{% elif b %}" * (MAX_ELIFS // 2) + "{% endif %}"
    + "{% elif a %}" * (MAX_ELIFS // 2 + 1) + "{% endif %}",
    "x" * (MAX_TEMPLATE_CHARS - 10) + "{{ a }}",  # text between tags is cheap
]


@pytest.mark.parametrize("template", WITHIN_LIMITS)
def test_within_limits_compiles(template: str) -> None:
    started_s = time.monotonic()
    Engine().compile(template)
    assert time.monotonic() - started_s < 1


TOO_BIG = [
    # (template, words in the message, line) — refused before parsing, within milliseconds
    ("{% if a %}1" + "{% elif a %}2" * 8_000 + "{% endif %}",  # 100 KB: once 1.6 s in the nesting check
     f"an {{% if %}} has more than {MAX_ELIFS} {{% elif %}}", 1),
    ("{% if a %}\n" + "{% elif a %}\n" * (MAX_ELIFS + 1) + "{% endif %}",
     f"more than {MAX_ELIFS} {{% elif %}}", MAX_ELIFS + 2),
    ("{{ a }}" * (MAX_TEMPLATE_TOKENS // 2 + 1), f"more than {MAX_TEMPLATE_TOKENS} names, operators and values", 1),
    ("{{ [" + "1," * MAX_TEMPLATE_TOKENS + "] }}", f"more than {MAX_TEMPLATE_TOKENS} names", 1),
]


@pytest.mark.parametrize(("template", "words", "line"), TOO_BIG)
def test_too_big_is_refused_before_parsing(template: str, words: str, line: int) -> None:
    started_s = time.monotonic()
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile(template)
    assert time.monotonic() - started_s < 0.3
    assert caught.value.message.startswith(f"template.html line {line}: ")
    assert words in caught.value.message
    assert caught.value.details["line"] == line


def test_too_long_source_is_refused_before_reading_it() -> None:
    started_s = time.monotonic()
    with pytest.raises(TemplateSyntaxError) as caught:
        Engine().compile("{{ a }}" * (MAX_TEMPLATE_CHARS // 7 + 1))
    assert time.monotonic() - started_s < 0.1
    assert caught.value.message == (f"template.html: the template is {7 * (MAX_TEMPLATE_CHARS // 7 + 1)} characters, "
                                    f"over the limit of {MAX_TEMPLATE_CHARS}; move large text or images into files "
                                    "next to it")
    assert caught.value.details["limit"] == MAX_TEMPLATE_CHARS


def test_elifs_within_the_limit_are_checked_in_linear_time() -> None:
    """The nesting check once compared each node with every elif of its if (8,000 elifs: 1.6 s)."""
    from jinja2.sandbox import SandboxedEnvironment

    from pressrun.templating.pipes import check_compile_limits

    # Timed side by side with parsing the same template (linear in its size), not against a fixed
    # bound: on a busy machine both slow down alike. Linear, the check takes a fraction of the
    # parse (~0.13 vs ~0.8 s); quadratic, it took ~10 times the parse.
    started_s = time.monotonic()
    ast = SandboxedEnvironment().parse("{% if a %}1" + "{% elif a %}2" * 20_000 + "{% endif %}")
    parse_s = time.monotonic() - started_s
    started_s = time.monotonic()
    check_compile_limits(ast)
    assert time.monotonic() - started_s < parse_s
