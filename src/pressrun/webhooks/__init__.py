"""Webhooks: signed event deliveries (sender.py), signing and verification for receivers (signing.py),
the outbound address policy (policy.py) and event payloads with the recorder that writes them
(events.py). Their rows are queried in :mod:`pressrun.db.repo.webhooks`.

Receivers verify a delivery with :func:`verify`::

    from pressrun.webhooks import verify, InvalidSignature
    verify(raw_body, request.headers["X-Pressrun-Signature"], secret)   # raises InvalidSignature
"""

from pressrun.webhooks.signing import InvalidSignature, sign, verify

__all__ = ["InvalidSignature", "sign", "verify"]
