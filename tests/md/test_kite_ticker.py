"""KiteTicker packets decode to exactly kiteconnect-mocks' JSON; packets built to the documented layout round-trip."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import pytest

from processors.connector.kite.ticker import PacketError, book_top, decode_message, decode_packet
from tests.conftest import real_data


def as_json(tick: Any) -> dict:
    """The tick in the mocks' JSON shape (floats from exact decimals, ISO times)."""
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value
    return {k: convert(v) for k, v in asdict(tick).items() if v is not None and v != {}}


def recorded(name: str) -> dict:
    return json.loads(real_data(name).read_text())


def test_full_packet_decodes_to_the_recorded_json() -> None:
    tick = decode_packet(base64.b64decode(real_data("kitemocks_ticker_full.packet").read_text()))
    expected = recorded("kitemocks_ticker_full.json")
    got = as_json(tick)
    # The mock's change is a float subtraction (1573.7 - 1567.8 = 5.900000000000091): absolute, not percent.
    assert tick.change == Decimal("5.90") and got.pop("change") == pytest.approx(expected.pop("change"), abs=1e-9)
    assert got == expected


def test_quote_packet_decodes_to_the_recorded_json_except_the_mocks_copied_change() -> None:
    tick = decode_packet(base64.b64decode(real_data("kitemocks_ticker_quote.packet").read_text()))
    expected = recorded("kitemocks_ticker_quote.json")
    got = as_json(tick)
    # Documented difference: the mock repeats the full packet's change (5.9); this packet's
    # last_price - close is 1573.15 - 1567.8 = 5.35, which is what we report.
    assert expected.pop("change") == pytest.approx(5.9) and got.pop("change") == 5.35
    assert got == expected


def test_ltp_packet_built_to_the_documented_layout_matches_the_recorded_json() -> None:
    expected = recorded("kitemocks_ticker_ltp.json")
    message = struct.pack(">HH", 1, 8) + struct.pack(">ii", 408065, 157315)
    [tick] = decode_message(message)
    assert as_json(tick) == expected


def test_messages_with_several_packets_heartbeats_and_truncation() -> None:
    ltp = struct.pack(">ii", 408065, 157315)
    cds = struct.pack(">ii", (12345 << 8) | 3, 745_678_900)  # currency derivative: price / 10^7
    ticks = decode_message(struct.pack(">H", 2) + struct.pack(">H", 8) + ltp + struct.pack(">H", 8) + cds)
    assert [t.last_price for t in ticks] == [Decimal("1573.15"), Decimal("74.56789")]
    assert decode_message(b"\x00") == []
    with pytest.raises(PacketError, match="exceeds"):
        decode_message(struct.pack(">HH", 1, 44) + ltp)
    with pytest.raises(PacketError, match="not 8"):
        decode_packet(b"\x00" * 20)


def test_full_tick_book_top() -> None:
    tick = decode_packet(base64.b64decode(real_data("kitemocks_ticker_full.packet").read_text()))
    top = book_top(tick, symbol="INFY")
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == \
        (Decimal("1573.4"), Decimal(5), Decimal("1573.7"), Decimal(172))
