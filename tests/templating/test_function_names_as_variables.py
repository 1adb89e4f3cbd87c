"""Row columns named like the built-in functions (title, date, number, round…) are row data."""

from __future__ import annotations

import pytest

from pressrun.errors import MissingVariableError
from pressrun.templating import Engine
from pressrun.templating.engine import FUNCTION_NAMES


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_a_missing_column_named_like_a_function_is_a_missing_variable(name):
    template = Engine().compile(f"<p>{{{{ {name} }}}}</p>")
    assert template.variables() == [name]
    with pytest.raises(MissingVariableError, match=name):
        template.render({})
    assert Engine(strict=False).compile(f"<p>{{{{ {name} }}}}</p>").render({}) == "<p></p>"
    assert template.render({name: "value"}) == "<p>value</p>"


def test_function_calls_still_work_beside_a_column_of_the_same_name():
    template = Engine().compile("{{ title }}|{{ title(name) }}|{{ round(x, 1) }}|{{ currency(x, 'EUR') }}")
    assert template.render({"title": "Dr", "name": "ada lovelace", "x": 2.345}) == "Dr|Ada Lovelace|2.3|€2.35"
