"""Webhook signatures: HMAC-SHA256 over timestamp, delivery id and body.

    Plinth-Signature: t=1732460000,v1=<hex>
    Plinth-Delivery: <delivery id>

The timestamp bounds how old a delivery may be (replays of old captures fail), the delivery id
is remembered by the receiver (replays within the window fail), and both are signed, so
neither can be swapped without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from plinth.integration.models import SignatureRefused

SIGNATURE = "Plinth-Signature"
DELIVERY = "Plinth-Delivery"
TOPIC = "Plinth-Event"


def signature(secret: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    """The `Plinth-Signature` header value for a delivery."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{delivery_id}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str | None,
    delivery_id: str | None,
    body: bytes,
    tolerance: float = 300,
    now: float | None = None,
) -> int:
    """Check a signature header; return its timestamp or raise SignatureRefused."""
    if not header or not delivery_id:
        raise SignatureRefused(f"{SIGNATURE} and {DELIVERY} headers are required", path=SIGNATURE)
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    if not stamp.isdigit() or "v1" not in parts:
        raise SignatureRefused(f"{SIGNATURE} is malformed (t=…,v1=…)", path=SIGNATURE)
    timestamp = int(stamp)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureRefused(
            f"The signature is older than {tolerance:g} s (or from the "
            "future); a replay is refused",
            path=SIGNATURE,
        )
    expected = signature(secret, timestamp, delivery_id, body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureRefused("The signature does not match the body", path=SIGNATURE)
    return timestamp
