"""The service's absolute links (pure): file links expire with their output, on the public base URL
unless the caller names another; naive times are UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from pressrun.errors import LinkExpiredError
from pressrun.storage import Links, UrlSigner

SIGNER = UrlSigner(bytes(range(32)))
LINKS = Links(SIGNER, "https://render.example.com", retention_s=3600)
MADE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("made_at", [MADE, MADE.replace(tzinfo=None)])
def test_expires_at_is_made_at_plus_retention_in_utc(made_at: datetime) -> None:
    assert LINKS.expires_at(made_at) == MADE + timedelta(hours=1)


def test_expires_at_without_a_time_counts_from_now() -> None:
    before = datetime.now(UTC)
    assert before + timedelta(hours=1) <= LINKS.expires_at(None) <= datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("base_url", "expected_base"),
    [(None, "https://render.example.com"), ("http://pressrun.test", "http://pressrun.test")],
)
def test_file_url_is_signed_until_the_output_expires(base_url: str | None, expected_base: str) -> None:
    url = LINKS.file_url("batches/b/0.png", MADE, base_url)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == expected_base and parts.path == "/files/batches/b/0.png"
    query = parse_qs(parts.query)
    expires = int((MADE + timedelta(hours=1)).timestamp())
    assert query["expires"] == [str(expires)]
    SIGNER.verify("batches/b/0.png", expires, query["signature"][0], now=expires - 1)
    with pytest.raises(LinkExpiredError):
        SIGNER.verify("batches/b/0.png", expires, query["signature"][0], now=expires + 1)


def test_results_url() -> None:
    assert LINKS.results_url("batch_1") == "https://render.example.com/templates/batch/batch_1/results"
