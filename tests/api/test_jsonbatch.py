"""The JSON batch reader stops at the plan's limit instead of building every row first."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from pressrun.api.jsonbatch import MalformedJson, NotAnObject, TooManyItems, parse_batch_body


def test_reads_fields_and_variable_sets_like_json_loads():
    body = {"format": "jpeg", "variableSets": [{"a": 1, "nested": {"b": [1, 2]}}, {"c": "ü"}], "zip": True,
            "webhookUrl": None}
    fields, sets = parse_batch_body(json.dumps(body, indent=2).encode(), 10)
    assert sets == body["variableSets"]
    assert fields == {k: v for k, v in body.items() if k != "variableSets"}
    assert parse_batch_body(b"{}", 10) == ({}, None)
    assert parse_batch_body(b'{"variableSets": "x"}', 10) == ({}, "x")
    assert parse_batch_body(b' { "variableSets" : [ ] } ', 10) == ({}, [])


@pytest.mark.parametrize("body", [b"{", b'{"a" 1}', b'{"variableSets": [1,]}', b'{"a": 1} trailing', b"\xff\xfe",
                                  b'{"a": ' + b"9" * 5000 + b"}", b"[1,"])
def test_bad_json_is_malformed(body):
    with pytest.raises(MalformedJson):
        parse_batch_body(body, 10)


@pytest.mark.parametrize(("body", "kind"), [(b"[1]", "an array"), (b"null", "null"), (b'"t"', "a string"),
                                            (b"42", "a number")])
def test_valid_json_that_is_not_an_object(body, kind):
    with pytest.raises(NotAnObject, match=kind):
        parse_batch_body(body, 10)


def test_stops_past_the_limit_with_bounded_memory():
    body = b'{"variableSets": [' + b"{}," * 20_000_000 + b"{}]}"  # 60 MB, 20 million rows
    tracemalloc.start()
    try:
        with pytest.raises(TooManyItems) as caught:
            parse_batch_body(body, 50_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.limit == 50_000
    # The decoded text (60 MB) plus 50,001 small dicts; json.loads would have built 20 million (gigabytes).
    assert peak < 2 * len(body), f"peak {peak / 2**20:.0f} MiB"
