"""Event identifiers: time-ordered UUIDv7 for new facts, UUIDv5 for facts derived from others."""

from __future__ import annotations

import hashlib
import os
import time
import uuid

# A fixed namespace so every deployment derives the same ids from the same inputs.
_DERIVED_NAMESPACE = uuid.UUID("5b0f3f6e-2f43-4d55-9a2b-7c3e6a1d9e10")
_NAMESPACE_BYTES = _DERIVED_NAMESPACE.bytes
# The RFC 4122 variant (bits 10) applied to the high nibble of byte 8, by that nibble's value.
_VARIANT_NIBBLE = "89ab89ab89ab89ab"


def new_event_id(now_ns: int | None = None) -> str:
    """A fresh UUIDv7 (RFC 9562): 48-bit Unix milliseconds then 74 random bits, so ids sort by time."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76                      # version 7
    value |= ((rand >> 62) & 0xFFF) << 64   # rand_a
    value |= 0b10 << 62                     # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF   # rand_b
    return str(uuid.UUID(int=value))


def derived_id(parent_id: str, role: str, index: int = 0) -> str:
    """The id of the `index`-th output of kind `role` caused by `parent_id`: the same inputs, the same id.

    A redelivered input therefore produces byte-identical outputs, and JetStream's
    Nats-Msg-Id dedupe window drops the copies (ARCHITECTURE.md, principle 4).
    """
    # uuid5 formatted directly from the SHA-1 digest: building a uuid.UUID costs ~8x more, and
    # the risk path derives an id per decision.
    x = hashlib.sha1(_NAMESPACE_BYTES + f"{parent_id}/{role}/{index}".encode()).hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT_NIBBLE[int(x[16], 16)]}{x[17:20]}-{x[20:32]}"


def intent_id_for(account: str, client_order_id: str) -> str:
    """The id of an order intent published without one: stable per account and client order id."""
    return derived_id(f"{account}:{client_order_id}", "intent")


def uuid7_time_ns(event_id: str) -> int:
    """The creation time, in ns, that a UUIDv7 carries (millisecond precision)."""
    return (uuid.UUID(event_id).int >> 80) * 1_000_000
