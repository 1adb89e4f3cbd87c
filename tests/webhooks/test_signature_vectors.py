"""Signatures against fixed vectors computed here with hmac, not with pressrun's own digest function:
a receiver written from the README must accept what pressrun sends, and a change to what is signed
(the timestamp left out, another separator) must fail these tests. File links likewise."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pressrun.errors import InvalidSignatureError, LinkExpiredError
from pressrun.storage.signing import UrlSigner
from pressrun.webhooks import InvalidSignature, sign, verify

SECRET = "whsec_fixed-test-secret"
BODY = b'{"event":"batch.completed","data":{"batchId":"batch_1"}}'
T = 1_765_000_000
# HMAC-SHA256(secret, "<t>.<body>"), as the README tells receivers to compute it.
EXPECTED = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()


def test_the_header_is_the_documented_hmac_of_timestamp_dot_body():
    assert sign(BODY, SECRET, timestamp=T) == f"t={T},v1={EXPECTED}"


def test_a_header_made_by_hand_verifies():
    verify(BODY, f"t={T},v1={EXPECTED}", SECRET, now=T + 10)


def test_the_timestamp_is_part_of_what_is_signed():
    # The same signature with another timestamp must not verify: a replay cannot refresh its time.
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(BODY, f"t={T + 60},v1={EXPECTED}", SECRET, now=T + 60)


@pytest.mark.parametrize("offset_s", [301, 3600, -301, -3600])
def test_timestamps_outside_the_tolerance_are_refused_past_and_future(offset_s):
    header = sign(BODY, SECRET, timestamp=T)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(BODY, header, SECRET, now=T + offset_s)


def test_during_a_rotation_any_one_v1_matching_is_enough():
    old = hmac.new(b"whsec_old", f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    verify(BODY, f"t={T},v1={old},v1={EXPECTED}", SECRET, now=T)
    verify(BODY, f"t={T},v1={EXPECTED},v1={old}", SECRET, now=T)
    with pytest.raises(InvalidSignature):
        verify(BODY, f"t={T},v1={old},v1={'0' * 64}", SECRET, now=T)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={T}", f"t=soon,v1={EXPECTED}", f"{EXPECTED}"])
def test_malformed_headers_are_refused(header):
    with pytest.raises(InvalidSignature):
        verify(BODY, header, SECRET, now=T)


LINK_SECRET = b"k" * 32


def test_file_links_are_the_documented_hmac_of_key_newline_expiry():
    key, expires = "batches/batch_1/0.png", 1_765_000_000
    digest = hmac.new(LINK_SECRET, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()
    signer = UrlSigner(LINK_SECRET)
    assert signer.sign(key, expires) == f"expires={expires}&signature={digest}"
    signer.verify(key, str(expires), digest, now=expires - 1)
    with pytest.raises(LinkExpiredError):
        signer.verify(key, str(expires), digest, now=expires + 1)
    # Another file, another expiry, or another secret: refused.
    for other_key, other_expires, other_signer in ((key + "x", expires, signer), (key, expires + 1, signer),
                                                   (key, expires, UrlSigner(b"j" * 32))):
        with pytest.raises(InvalidSignatureError):
            other_signer.verify(other_key, str(other_expires), digest, now=expires - 1)
