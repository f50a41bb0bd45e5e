"""Binance's documented SIGNED examples (spot API docs, "Request security": HMAC keys) reproduce exactly."""

from __future__ import annotations

import pytest

from processors.connector.binance.signing import sign, signed_query

# The documentation's example secret (published by Binance for this purpose; not a real credential).
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ORDER = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"),
         ("price", "0.1")]


def test_documented_ascii_example_signature() -> None:
    query = signed_query(ORDER, secret=DOC_SECRET, timestamp_ms=1499827319559, recv_window_ms=5000)
    assert query == ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
                     "&timestamp=1499827319559&signature="
                     "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")


def test_documented_unicode_symbol_is_percent_encoded_before_signing() -> None:
    query = signed_query([("symbol", "１２３４５６"), *ORDER[1:]], secret=DOC_SECRET, timestamp_ms=1499827319559)
    assert query.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert query.endswith("&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3")


def test_recv_window_beyond_binance_limit_is_refused_with_the_limit() -> None:
    with pytest.raises(ValueError, match="recv_window_ms 70000 is outside 1..60000"):
        signed_query(ORDER, secret="s", timestamp_ms=1, recv_window_ms=70_000)
    assert len(sign("s", "")) == 64
