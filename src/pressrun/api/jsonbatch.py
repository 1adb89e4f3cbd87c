"""Reading a JSON batch body without materialising more rows than the plan allows.

``json.loads`` on an 80 MB body of ``[{}, {}, …]`` builds tens of millions of dicts (gigabytes)
before anyone can count them. Here the top-level object is walked key by key and ``variableSets``
element by element, so reading stops at the first row past the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class TooManyItems(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} variable sets")
        self.limit = limit


class MalformedJson(ValueError):
    pass


class NotAnObject(Exception):
    """Valid JSON, but the body must be an object; ``kind`` says what it is."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the body must be a JSON object, not {kind}")
        self.kind = kind


def _skip(text: str, at: int) -> int:
    return _WS.match(text, at).end()  # type: ignore[union-attr]


def _expect(text: str, at: int, chars: str) -> str:
    if at >= len(text) or text[at] not in chars:
        got = repr(text[at]) if at < len(text) else "the end of the body"
        raise MalformedJson(f"expected {' or '.join(repr(c) for c in chars)} at position {at}, got {got}")
    return text[at]


def parse_batch_body(raw: bytes, max_items: int) -> tuple[dict[str, Any], Any]:
    """Returns (the other top-level fields, variableSets). variableSets is a list when the body has an
    array there (with at most ``max_items`` elements: :class:`TooManyItems` past it), else whatever
    the body has (left for validation to name). Raises :class:`MalformedJson` for bad JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return _parse(text, max_items)
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"{exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise MalformedJson("the body is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        if isinstance(exc, MalformedJson):
            raise
        raise MalformedJson(str(exc)[:200]) from None


def _parse(text: str, max_items: int) -> tuple[dict[str, Any], Any]:
    fields: dict[str, Any] = {}
    sets: Any = None
    at = _skip(text, 0)
    if at < len(text) and text[at] != "{":
        if len(text) > 1_000_000:
            raise NotAnObject("a large non-object value")
        value = json.loads(text)  # valid JSON of the wrong shape is a validation error, bad JSON a 400
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise NotAnObject(kind)
    _expect(text, at, "{")
    at = _skip(text, at + 1)
    if at < len(text) and text[at] == "}":
        at += 1
    else:
        while True:
            _expect(text, at, '"')
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            _expect(text, at, ":")
            at = _skip(text, at + 1)
            if key == "variableSets" and at < len(text) and text[at] == "[":
                sets, at = _array(text, at, max_items)
            else:
                value, at = _DECODER.raw_decode(text, at)
                if key == "variableSets":
                    sets = value
                else:
                    fields[key] = value
            at = _skip(text, at)
            if _expect(text, at, ",}") == "}":
                at += 1
                break
            at = _skip(text, at + 1)
    if _skip(text, at) != len(text):
        raise MalformedJson(f"unexpected data after the JSON object at position {_skip(text, at)}")
    return fields, sets


def _array(text: str, at: int, max_items: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    at = _skip(text, at + 1)
    if at < len(text) and text[at] == "]":
        return items, at + 1
    while True:
        value, at = _DECODER.raw_decode(text, at)
        items.append(value)
        if len(items) > max_items:
            raise TooManyItems(max_items)
        at = _skip(text, at)
        if _expect(text, at, ",]") == "]":
            return items, at + 1
        at = _skip(text, at + 1)
