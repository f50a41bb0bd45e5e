"""Binance spot and USD-M futures market-data messages, exactly as sent, parsed into sq.md.* events.

Covers the WebSocket streams `<symbol>@depth@100ms` (diff depth; futures add `pu`),
`@bookTicker`, `@kline_<interval>`, `@aggTrade`, `@trade` — raw or wrapped in the combined-stream
envelope `{"stream": .., "data": ..}` — and the REST depth snapshot (`/api/v3/depth`,
`/fapi/v1/depth`). Output ids are derived from what identifies the message at the venue (update
id, trade id, kline open time), so a message delivered or replayed twice yields the same event.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from events.ids import derived_id
from events.market import Bar, BookDelta, BookSnapshot, BookTop, Trade
from events.subjects import token

VENUE_SPOT = "binance"
VENUE_FUTURES = "binance_futures"
MS = 1_000_000
Level = tuple[Decimal, Decimal]


class FeedError(ValueError):
    """A venue message could not be turned into an event; `field`, `value` and `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        text = repr(value)
        super().__init__(f"{field} {text[:200]} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class _DepthUpdate(msgspec.Struct):
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]
    E: int | None = None
    pu: int | None = None


class _BookTicker(msgspec.Struct):
    s: str
    u: int
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal
    E: int | None = None


class _AggTrade(msgspec.Struct):
    s: str
    a: int
    p: Decimal
    q: Decimal
    T: int
    m: bool
    E: int | None = None


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: Decimal
    q: Decimal
    T: int
    m: bool
    E: int | None = None


class _KlineBody(msgspec.Struct):
    t: int
    i: str
    o: Decimal
    c: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - Binance's field name
    v: Decimal
    n: int
    x: bool
    q: Decimal | None = None


class _Kline(msgspec.Struct):
    s: str
    k: _KlineBody
    E: int | None = None


class _Snapshot(msgspec.Struct):
    lastUpdateId: int  # noqa: N815 - Binance's field name
    bids: list[Level]
    asks: list[Level]
    E: int | None = None


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Probe(msgspec.Struct):
    e: str | None = None
    u: int | None = None
    k: msgspec.Raw | None = None


_DECODERS = {kind: msgspec.json.Decoder(t) for kind, t in (
    ("depth", _DepthUpdate), ("bookTicker", _BookTicker), ("aggTrade", _AggTrade), ("trade", _Trade),
    ("kline", _Kline), ("snapshot", _Snapshot))}
_envelope = msgspec.json.Decoder(_Envelope)
_probe = msgspec.json.Decoder(_Probe)
_EVENT_KIND = {"depthUpdate": "depth", "bookTicker": "bookTicker", "aggTrade": "aggTrade", "trade": "trade",
               "kline": "kline"}


def stream_kind(stream: str) -> str:
    """The message kind a combined-stream name carries (`nknusdt@depth@100ms` -> `depth`)."""
    parts = stream.split("@")
    if len(parts) < 2:
        raise FeedError("stream", stream, "is not <symbol>@<stream>")
    name = parts[1]
    if name.startswith("kline_"):
        return "kline"
    if name in ("depth", "bookTicker", "aggTrade", "trade"):
        return name
    raise FeedError("stream", stream, "is not a supported stream (depth, bookTicker, kline_*, aggTrade, trade)")


def _decode(kind: str, raw: bytes | str) -> msgspec.Struct:
    try:
        return _DECODERS[kind].decode(raw)
    except msgspec.DecodeError as exc:
        raise FeedError(kind, raw if isinstance(raw, str) else raw[:200], f"is malformed: {exc}") from exc


def _sym(symbol: str) -> str:
    # Event constructors do not check Meta patterns; symbols become subject tokens, so check here.
    return token("symbol", symbol)


def _ts(event_ms: int | None, recv_ts_ns: int) -> int:
    return event_ms * MS if event_ms is not None else recv_ts_ns


def depth_update(msg: _DepthUpdate, venue: str, recv_ts_ns: int) -> BookDelta:
    """A diff-depth message as a BookDelta (U, u and, for futures, pu)."""
    return BookDelta(id=derived_id(f"{venue}:{msg.s}:depth:{msg.u}", "md"), ts=_ts(msg.E, recv_ts_ns),
                     venue=venue, symbol=_sym(msg.s), first_update_id=msg.U, last_update_id=msg.u,
                     bids=msg.b, asks=msg.a, prev_last_update_id=msg.pu)


def book_ticker(msg: _BookTicker, venue: str, recv_ts_ns: int) -> BookTop:
    """A bookTicker message as a BookTop (spot sends no event time: the receive time stands in)."""
    total = msg.B + msg.A
    return BookTop(id=derived_id(f"{venue}:{msg.s}:top:{msg.u}", "md"), ts=_ts(msg.E, recv_ts_ns), venue=venue,
                   symbol=_sym(msg.s), last_update_id=msg.u, bid_price=msg.b, bid_size=msg.B, ask_price=msg.a,
                   ask_size=msg.A, imbalance=float((msg.B - msg.A) / total) if total else None)


def agg_trade(msg: _AggTrade, venue: str, recv_ts_ns: int) -> Trade:
    """An aggTrade as a Trade; `m` (buyer is maker) means the seller was the aggressor."""
    return Trade(id=derived_id(f"{venue}:{msg.s}:aggTrade:{msg.a}", "md"), ts=_ts(msg.E, msg.T * MS),
                 venue=venue, symbol=_sym(msg.s), price=msg.p, quantity=msg.q, aggressor="SELL" if msg.m else "BUY",
                 trade_id=str(msg.a), venue_ts=msg.T * MS)


def trade(msg: _Trade, venue: str, recv_ts_ns: int) -> Trade:
    """A raw trade as a Trade."""
    return Trade(id=derived_id(f"{venue}:{msg.s}:trade:{msg.t}", "md"), ts=_ts(msg.E, msg.T * MS),
                 venue=venue, symbol=_sym(msg.s), price=msg.p, quantity=msg.q, aggressor="SELL" if msg.m else "BUY",
                 trade_id=str(msg.t), venue_ts=msg.T * MS)


def kline(msg: _Kline, venue: str, recv_ts_ns: int) -> Bar | None:
    """A closed kline (`x` true) as a Bar; an in-progress kline is not a fact yet and gives None."""
    k = msg.k
    if not k.x:
        return None
    return Bar(id=derived_id(f"{venue}:{msg.s}:kline:{k.i}:{k.t}", "md"), ts=_ts(msg.E, recv_ts_ns),
               venue=venue, symbol=_sym(msg.s), interval=k.i, open_time=k.t * MS, open=k.o, high=k.h, low=k.l,
               close=k.c, volume=k.v, trade_count=k.n, quote_volume=k.q)


def parse_ws(raw: bytes | str, venue: str, recv_ts_ns: int) -> BookDelta | BookTop | Trade | Bar | None:
    """One WebSocket message (combined envelope or raw) as an event; None for an in-progress kline.

    Raises FeedError naming what was wrong: malformed JSON, a wrong type, an unknown stream.
    """
    try:
        if (raw[:10] if isinstance(raw, str) else raw[:10].decode("utf-8", "replace")).lstrip().startswith('{"stream"'):
            envelope = _envelope.decode(raw)
            kind, body = stream_kind(envelope.stream), bytes(envelope.data)
        else:
            probe = _probe.decode(raw)
            if probe.e is not None:
                if probe.e not in _EVENT_KIND:
                    raise FeedError("e", probe.e, "is not a supported event type")
                kind = _EVENT_KIND[probe.e]
            elif probe.u is not None:
                kind = "bookTicker"  # spot bookTicker messages carry no "e"
            else:
                raise FeedError("message", raw, "has neither `stream`, `e` nor `u`")
            body = raw if isinstance(raw, bytes) else raw.encode()
    except msgspec.DecodeError as exc:
        raise FeedError("message", raw, f"is malformed: {exc}") from exc
    return parse_kind(kind, body, venue, recv_ts_ns)


def parse_kind(kind: str, body: bytes, venue: str, recv_ts_ns: int) -> BookDelta | BookTop | Trade | Bar | None:
    """Decode the data of a known stream kind into its event."""
    msg = _decode(kind, body)
    try:
        match msg:
            case _DepthUpdate():
                return depth_update(msg, venue, recv_ts_ns)
            case _BookTicker():
                return book_ticker(msg, venue, recv_ts_ns)
            case _AggTrade():
                return agg_trade(msg, venue, recv_ts_ns)
            case _Trade():
                return trade(msg, venue, recv_ts_ns)
            case _Kline():
                return kline(msg, venue, recv_ts_ns)
    except (msgspec.ValidationError, ValueError, ArithmeticError) as exc:
        # Event invariants (positive prices, token symbols, U <= u) refused the message.
        raise FeedError(kind, body[:200], f"is not a valid event: {exc}") from exc
    raise FeedError("kind", kind, "has no parser")


def parse_snapshot(raw: bytes | str, venue: str, symbol: str, recv_ts_ns: int) -> BookSnapshot:
    """A REST depth snapshot (`lastUpdateId`, `bids`, `asks`; futures add E and T) as a BookSnapshot."""
    msg = _decode("snapshot", raw)
    assert isinstance(msg, _Snapshot)
    try:
        return BookSnapshot(id=derived_id(f"{venue}:{symbol}:snapshot:{msg.lastUpdateId}", "md"),
                            ts=_ts(msg.E, recv_ts_ns), venue=venue, symbol=_sym(symbol),
                            last_update_id=msg.lastUpdateId, bids=msg.bids, asks=msg.asks)
    except (msgspec.ValidationError, ValueError, ArithmeticError) as exc:
        raise FeedError("snapshot", symbol, f"is not a valid event: {exc}") from exc


__all__ = ["VENUE_FUTURES", "VENUE_SPOT", "FeedError", "parse_kind", "parse_snapshot", "parse_ws", "stream_kind"]
