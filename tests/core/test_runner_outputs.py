"""The batch runner's checks on what it writes, without a browser."""

from __future__ import annotations

import pytest

from pressrun.errors import EmptyOutputError, error_body
from pressrun.models import OutputFormat, RenderResult
from pressrun.runner import check_not_empty


def test_an_empty_capture_fails_its_row_with_a_clear_message():
    with pytest.raises(EmptyOutputError) as caught:
        check_not_empty(RenderResult(b"", OutputFormat.WEBP, 16384, 40))
    body = error_body(caught.value)
    assert body["code"] == "empty_output"
    assert "empty webp" in body["message"] and "16384×40" in body["message"]


def test_a_capture_with_data_passes():
    check_not_empty(RenderResult(b"RIFF", OutputFormat.WEBP, 10, 10))
