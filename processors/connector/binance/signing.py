"""Binance SIGNED request payloads: percent-encoded query string, recvWindow and timestamp, HMAC-SHA256 hex."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import quote

MAX_RECV_WINDOW_MS = 60_000


def query_string(params: Sequence[tuple[str, object]]) -> str:
    """`k=v&k=v` in the given order, each key and value percent-encoded as UTF-8 (Binance signs this exact text)."""
    return "&".join(f"{quote(str(key), safe='')}={quote(str(value), safe='')}" for key, value in params)


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of `payload` keyed by the API secret, as lowercase hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: Sequence[tuple[str, object]], *, secret: str, timestamp_ms: int,
                 recv_window_ms: int = 5000) -> str:
    """The full query string of a SIGNED request: params, recvWindow, timestamp, then signature last.

    The timestamp is passed in (the caller reads the clock), so the same inputs sign identically.
    """
    if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"recv_window_ms {recv_window_ms} is outside 1..{MAX_RECV_WINDOW_MS} (Binance's limit)")
    payload = query_string([*params, ("recvWindow", recv_window_ms), ("timestamp", timestamp_ms)])
    return f"{payload}&signature={sign(secret, payload)}"


__all__ = ["MAX_RECV_WINDOW_MS", "query_string", "sign", "signed_query"]
