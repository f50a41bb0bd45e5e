"""KiteTicker binary market-data packets (LTP, quote and full modes) decoded exactly, prices as Decimal.

Layout (Kite Connect v3 WebSocket docs): a binary message is a 2-byte packet count, then for
each packet a 2-byte length and the packet; all integers big-endian int32. LTP = token, last price
(8 bytes). Quote = token, ltp, last quantity, average price, volume, buy quantity, sell quantity,
open, high, low, close (44 bytes). Full = quote + last trade time, OI, OI day high, OI day low,
exchange timestamp, then 10 depth entries of quantity int32, price int32, orders int16 and 2
padding bytes (5 bids then 5 asks; 184 bytes). Prices are in paise (÷100), currency derivatives
÷10^7, BSE currency ÷10^4. Indices (segment 9) are not tradable.

`change` is reported as the absolute `last_price - close` (the convention kiteconnect-mocks'
JSON follows); pykiteconnect reports it as a percentage instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from events.ids import derived_id
from events.market import BookTop

IST = timezone(timedelta(hours=5, minutes=30))
SEGMENT_CDS, SEGMENT_BCD, SEGMENT_INDICES = 3, 6, 9
_QUOTE = struct.Struct(">11i")
_FULL_EXTRA = struct.Struct(">5i")
_DEPTH = struct.Struct(">iih2x")


class PacketError(ValueError):
    """A binary packet could not be decoded; `field`, `value` and `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class DepthLevel:
    """One market-depth entry."""

    price: Decimal
    quantity: int
    orders: int


@dataclass(frozen=True)
class Tick:
    """A decoded KiteTicker packet; fields beyond the mode's are None."""

    mode: str
    tradable: bool
    instrument_token: int
    last_price: Decimal
    last_quantity: int | None = None
    average_price: Decimal | None = None
    volume: int | None = None
    buy_quantity: int | None = None
    sell_quantity: int | None = None
    ohlc: dict[str, Decimal] | None = None
    change: Decimal | None = None
    last_trade_time: datetime | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    timestamp: datetime | None = None
    depth: dict[str, list[DepthLevel]] = field(default_factory=dict)


def _divisor(token: int) -> Decimal:
    segment = token & 0xFF
    return Decimal(10_000_000) if segment == SEGMENT_CDS else Decimal(10_000) if segment == SEGMENT_BCD \
        else Decimal(100)


def decode_packet(packet: bytes) -> Tick:
    """Decode one packet (without its 2-byte length) by its size: 8 LTP, 28/32 index, 44 quote, 184 full."""
    size = len(packet)
    if size < 8:
        raise PacketError("packet length", size, "is below the 8 bytes of an LTP packet")
    token = struct.unpack_from(">i", packet)[0]
    div = _divisor(token)
    tradable = (token & 0xFF) != SEGMENT_INDICES
    if size == 8:
        return Tick("ltp", tradable, token, Decimal(struct.unpack_from(">i", packet, 4)[0]) / div)
    if size not in (44, 184):
        raise PacketError("packet length", size, "is not 8 (ltp), 44 (quote) or 184 (full)")
    (_, ltp, last_qty, avg, volume, buy_qty, sell_qty, open_, high, low, close) = _QUOTE.unpack_from(packet)
    last_price, close_price = Decimal(ltp) / div, Decimal(close) / div
    tick = Tick("quote", tradable, token, last_price, last_qty, Decimal(avg) / div, volume, buy_qty, sell_qty,
                {"open": Decimal(open_) / div, "high": Decimal(high) / div, "low": Decimal(low) / div,
                 "close": close_price}, last_price - close_price)
    if size == 44:
        return tick
    last_trade, oi, oi_high, oi_low, exchange_ts = _FULL_EXTRA.unpack_from(packet, 44)
    levels = [_DEPTH.unpack_from(packet, 64 + 12 * i) for i in range(10)]
    depth = {side: [DepthLevel(Decimal(price) / div, qty, orders) for qty, price, orders in levels[lo:lo + 5]]
             for side, lo in (("buy", 0), ("sell", 5))}
    return Tick("full", tradable, token, last_price, last_qty, tick.average_price, volume, buy_qty, sell_qty,
                tick.ohlc, tick.change, datetime.fromtimestamp(last_trade, IST), oi, oi_high, oi_low,
                datetime.fromtimestamp(exchange_ts, IST), depth)


def decode_message(message: bytes) -> list[Tick]:
    """Every packet of a binary WebSocket message; a 1-byte message is a heartbeat and holds none."""
    if len(message) < 2:
        return []
    count = struct.unpack_from(">H", message)[0]
    ticks, offset = [], 2
    for index in range(count):
        if offset + 2 > len(message):
            raise PacketError(f"packet[{index}]", offset, f"starts beyond the message's {len(message)} bytes")
        length = struct.unpack_from(">H", message, offset)[0]
        packet = message[offset + 2: offset + 2 + length]
        if len(packet) != length:
            raise PacketError(f"packet[{index}] length", length, f"exceeds the {len(packet)} bytes left")
        ticks.append(decode_packet(packet))
        offset += 2 + length
    return ticks


def book_top(tick: Tick, *, symbol: str, venue: str = "kite") -> BookTop | None:
    """The best bid and ask of a full-mode tick as a BookTop (the exchange timestamp is its time)."""
    if tick.timestamp is None or not tick.depth:
        return None
    bid, ask = tick.depth["buy"][0], tick.depth["sell"][0]
    ts = int(tick.timestamp.timestamp()) * 1_000_000_000
    total = bid.quantity + ask.quantity
    return BookTop(id=derived_id(f"{venue}:{tick.instrument_token}:{ts}", "top"), ts=ts, venue=venue, symbol=symbol,
                   last_update_id=int(tick.timestamp.timestamp()), bid_price=bid.price,
                   bid_size=Decimal(bid.quantity), ask_price=ask.price, ask_size=Decimal(ask.quantity),
                   imbalance=(bid.quantity - ask.quantity) / total if total else None)


__all__ = ["DepthLevel", "PacketError", "Tick", "book_top", "decode_message", "decode_packet"]
