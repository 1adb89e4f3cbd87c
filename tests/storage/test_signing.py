"""Signed file links (pure, table-driven) and the secret file they are signed with."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from pressrun.errors import ConfigError, InvalidSignatureError, LinkExpiredError
from pressrun.storage import UrlSigner, load_or_create_secret

SECRET = bytes(range(32))
KEY = "batches/b1/0.png"
EXPIRES = 1_900_000_000
NOW = 1_800_000_000.0


def signed(key: str = KEY, expires_at: int = EXPIRES, secret: bytes = SECRET) -> tuple[str, str]:
    query = parse_qs(UrlSigner(secret).sign(key, expires_at), strict_parsing=True)
    return query["expires"][0], query["signature"][0]


def test_sign_returns_the_query_string() -> None:
    query = UrlSigner(SECRET).sign(KEY, EXPIRES)
    expires, signature = signed()
    assert query == f"expires={EXPIRES}&signature={signature}"
    assert expires == str(EXPIRES)
    assert len(signature) == 64 and int(signature, 16) >= 0


@pytest.mark.parametrize("expires", [str(EXPIRES), EXPIRES])
def test_a_valid_link_verifies(expires: str | int) -> None:
    _, signature = signed()
    UrlSigner(SECRET).verify(KEY, expires, signature, now=NOW)
    UrlSigner(SECRET).verify(KEY, expires, signature.upper(), now=NOW)
    UrlSigner(SECRET).verify(KEY, expires, signature, now=EXPIRES)  # valid up to and including its second


def tampered_cases() -> list[tuple[str, str, str | int, str, str]]:
    expires, signature = signed()
    other_secret_signature = signed(secret=b"another secret, 32 bytes long!!!")[1]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    return [
        ("other key", "batches/b1/1.png", expires, signature, "does not match"),
        ("key prefix", "batches/b1/0.pn", expires, signature, "does not match"),
        ("later expiry", KEY, str(EXPIRES + 1), signature, "does not match"),
        ("earlier expiry", KEY, EXPIRES - 1, signature, "does not match"),
        ("one hex digit changed", KEY, expires, flipped, "does not match"),
        ("other secret", KEY, expires, other_secret_signature, "does not match"),
        ("short signature", KEY, expires, signature[:-1], "64 hexadecimal"),
        ("long signature", KEY, expires, signature + "0", "64 hexadecimal"),
        ("empty signature", KEY, expires, "", "64 hexadecimal"),
        ("non-hex signature", KEY, expires, "z" * 64, "64 hexadecimal"),
        ("non-ASCII signature", KEY, expires, "é" * 64, "64 hexadecimal"),
        ("empty expires", KEY, "", signature, "whole number"),
        ("negative expires", KEY, "-1", signature, "whole number"),
        ("fractional expires", KEY, f"{EXPIRES}.0", signature, "whole number"),
        ("text expires", KEY, "tomorrow", signature, "whole number"),
        ("spaced expires", KEY, f" {EXPIRES}", signature, "whole number"),
        ("non-ASCII digits", KEY, "١٩٠٠٠٠٠٠٠٠", signature, "whole number"),
        ("huge expires", KEY, "9" * 40, signature, "whole number"),
    ]


@pytest.mark.parametrize(("case", "key", "expires", "signature", "says"), tampered_cases())
def test_tampered_links_are_refused(
    case: str, key: str, expires: str | int, signature: str, says: str
) -> None:
    with pytest.raises(InvalidSignatureError) as info:
        UrlSigner(SECRET).verify(key, expires, signature, now=NOW)
    assert says in info.value.message
    assert info.value.http_status == 403 and info.value.code == "invalid_signature"
    # The message says what is wrong, never what the right signature would have been.
    assert signed(key)[1] not in info.value.message
    assert signed()[1] not in info.value.message


def test_an_expired_link_is_refused() -> None:
    expires, signature = signed()
    with pytest.raises(LinkExpiredError) as info:
        UrlSigner(SECRET).verify(KEY, expires, signature, now=EXPIRES + 0.5)
    assert info.value.http_status == 410 and info.value.code == "link_expired"


def test_a_forged_expired_link_is_reported_as_invalid_not_expired() -> None:
    with pytest.raises(InvalidSignatureError):
        UrlSigner(SECRET).verify(KEY, "1", "0" * 64, now=NOW)


def test_verify_uses_the_clock_by_default() -> None:
    expires, signature = signed(expires_at=1)
    with pytest.raises(LinkExpiredError):
        UrlSigner(SECRET).verify(KEY, expires, signature)
    expires, signature = signed(expires_at=4_000_000_000)
    UrlSigner(SECRET).verify(KEY, expires, signature)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        UrlSigner(b"")


def test_secret_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.hex()
    assert load_or_create_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left behind


def test_secret_files_differ_between_installations(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a.key") != load_or_create_secret(tmp_path / "b.key")


def test_an_existing_secret_is_read_as_hex(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("ab" * 40 + "\n")
    assert load_or_create_secret(path) == b"\xab" * 40


@pytest.mark.parametrize("contents", ["", "not hex at all", "ab" * 31, "ab" * 31 + "a"])
def test_an_unusable_secret_file_is_a_config_error_naming_it(tmp_path: Path, contents: str) -> None:
    path = tmp_path / "secret.key"
    path.write_text(contents)
    with pytest.raises(ConfigError) as info:
        load_or_create_secret(path)
    assert str(path) in info.value.message
    assert "delete the file" in info.value.message
    assert path.read_text() == contents  # never silently replaced: that would invalidate every link
