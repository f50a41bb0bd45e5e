"""The KiteTicker WebSocket client: binary ticks to Trades and BookSnapshots, order updates to ExecutionReports.

Protocol (Kite Connect v3 WebSocket docs): connect to `{ws}?api_key=..&access_token=..`, send
`{"a": "subscribe", "v": [tokens]}` and `{"a": "mode", "v": ["full", [tokens]]}`; binary messages
hold packets (decoded by `ticker.py`), a 1-byte message is a heartbeat, text messages are JSON
(`{"type": "order", "data": ..}` order updates, `{"type": "error", ..}`).

What becomes an event: a quote or full tick whose cumulative volume rose is a Trade of the last
traded quantity at the last price (its id comes from the token and that volume, so a
reconnect repeats no trade); LTP-mode ticks carry no size and give none. A full tick's five
depth levels a side give a BookSnapshot (empty slots left out) and, when both sides have a level,
a BookTop. `resubscribe` changes the instruments on the live connection (the daily instruments
refresh); `reconnect` drops it so the next one uses a renewed access token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
import msgspec

from events._base import Event
from events.ids import derived_id
from events.market import BookSnapshot, Trade
from events.stopping import Stopped, unless_stopped
from processors.connector.kite.orders import VENUE, KiteOrders
from processors.connector.kite.session import KiteSession
from processors.connector.kite.ticker import PacketError, Tick, book_top, decode_message
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class TickState:
    """Per instrument token, the last cumulative volume seen (to tell a new trade from a repeated quote)."""

    volumes: dict[int, int] = field(default_factory=dict)


def tick_events(state: TickState, ticks: list[Tick], symbols: dict[int, str], *, recv_ts: int) -> list[Event]:
    """Trades and book snapshots from decoded ticks of the subscribed instruments (others are ignored)."""
    events: list[Event] = []
    for tick in ticks:
        symbol = symbols.get(tick.instrument_token)
        if symbol is None or not tick.tradable:
            continue
        ts = int(tick.timestamp.timestamp()) * NS if tick.timestamp is not None else recv_ts
        volume, previous = tick.volume, state.volumes.get(tick.instrument_token)
        if volume is not None and tick.last_quantity and (previous is None or volume > previous):
            state.volumes[tick.instrument_token] = volume
            traded = int(tick.last_trade_time.timestamp()) * NS if tick.last_trade_time is not None else ts
            events.append(Trade(id=derived_id(f"{VENUE}:{tick.instrument_token}:trade:{volume}", "md"), ts=traded,
                                venue=VENUE, symbol=symbol, price=tick.last_price,
                                quantity=Decimal(tick.last_quantity), trade_id=f"{tick.instrument_token}:{volume}",
                                venue_ts=traded))
        if tick.mode == "full" and tick.depth:
            bids = [(level.price, Decimal(level.quantity)) for level in tick.depth["buy"]
                    if level.price > 0 and level.quantity > 0]
            asks = [(level.price, Decimal(level.quantity)) for level in tick.depth["sell"]
                    if level.price > 0 and level.quantity > 0]
            digest = hashlib.sha1(repr((bids, asks)).encode()).hexdigest()[:16]
            events.append(BookSnapshot(id=derived_id(f"{VENUE}:{tick.instrument_token}:depth:{ts}:{digest}", "md"),
                                       ts=ts, venue=VENUE, symbol=symbol, last_update_id=ts // NS, bids=bids,
                                       asks=asks))
            top = book_top(tick, symbol=symbol) if bids and asks else None
            if top is not None:  # id by content too: two tops within one exchange second are two facts
                events.append(msgspec.structs.replace(
                    top, id=derived_id(f"{VENUE}:{tick.instrument_token}:top:{ts}:{digest}", "md")))
    return events


@dataclass
class KiteTickerStats:
    """What the ticker client did: connections, messages, events and refused packets."""

    connects: int = 0
    messages: int = 0
    heartbeats: int = 0
    order_updates: int = 0


class KiteTicker:
    """Follows the KiteTicker stream for some instruments, reconnecting with backoff, into a FeedSink."""

    def __init__(self, session: KiteSession, symbols: dict[int, str], sink: FeedSink, *,
                 orders: KiteOrders | None = None, mode: str = "full", max_backoff_s: float = 30.0) -> None:
        self.session = session
        self.symbols = symbols
        self.sink = sink
        self.orders = orders
        self.mode = mode
        self.max_backoff_s = max_backoff_s
        self.state = TickState()
        self.stats = KiteTickerStats()
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def resubscribe(self, symbols: dict[int, str]) -> None:
        """Follow these instrument tokens from now on: unsubscribe the dropped ones, subscribe the new ones."""
        gone, new = sorted(set(self.symbols) - set(symbols)), sorted(set(symbols) - set(self.symbols))
        self.symbols = dict(symbols)
        ws = self._ws
        if ws is None or ws.closed:
            return  # the next connection subscribes to self.symbols
        if gone:
            await ws.send_str(json.dumps({"a": "unsubscribe", "v": gone}))
        if new:
            await ws.send_str(json.dumps({"a": "subscribe", "v": new}))
            await ws.send_str(json.dumps({"a": "mode", "v": [self.mode, new]}))

    async def reconnect(self) -> None:
        """Close the connection; `run` connects again at once with the session's current token."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe and consume until `stop`; reconnect after any drop, backing off to max_backoff_s."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._session_once(stop)
                backoff = 0.1
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 403:
                    self.session.expire()  # the token was refused: log in afresh on the next attempt
                log.warning("kite ticker handshake refused", extra={"status": exc.status})
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                # The type only: aiohttp's messages quote the URL, and the URL carries the access token.
                log.warning("kite ticker connection lost", extra={"error": type(exc).__name__})
            self.connected.clear()
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _session_once(self, stop: asyncio.Event) -> None:
        token = await self.session.token()
        url = f"{self.session.urls.ws}?api_key={self.session.creds.api_key}&access_token={token}"
        async with self.session.http.ws_connect(url, heartbeat=30) as ws:
            self._ws = ws
            self.stats.connects += 1
            tokens = sorted(self.symbols)
            await ws.send_str(json.dumps({"a": "subscribe", "v": tokens}))
            await ws.send_str(json.dumps({"a": "mode", "v": [self.mode, tokens]}))
            self.connected.set()
            while True:
                try:
                    msg = await unless_stopped(ws.receive(), stop)
                except Stopped:
                    return
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise aiohttp.ClientConnectionError(f"ticker closed: {msg.type.name} {msg.data!r}")
                await self.on_message(msg)

    async def on_message(self, msg: aiohttp.WSMessage) -> None:
        """Handle one WebSocket message: binary ticks, or a JSON text message."""
        recv_ts = time.time_ns()
        self.stats.messages += 1
        if msg.type is aiohttp.WSMsgType.BINARY:
            if len(msg.data) < 2:
                self.stats.heartbeats += 1
                return
            try:
                ticks = decode_message(msg.data)
                events = tick_events(self.state, ticks, self.symbols, recv_ts=recv_ts)
            except (PacketError, ValueError, ArithmeticError) as exc:
                await self.sink.reject("kite.ticker", f"bad ticker packet: {exc}", msg.data, ts=recv_ts)
                return
            await self.sink.emit(events)
        elif msg.type is aiohttp.WSMsgType.TEXT:
            await self._on_text(msg.data, recv_ts)

    async def _on_text(self, text: str, recv_ts: int) -> None:
        try:
            body = json.loads(text)
        except ValueError as exc:
            await self.sink.reject("kite.ticker", f"text message is not JSON: {exc}", text, ts=recv_ts)
            return
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "order" and self.orders is not None and isinstance(body.get("data"), dict):
            self.stats.order_updates += 1
            report = self.orders.on_order_update(body["data"], recv_ts=recv_ts)
            if report is not None:
                await self.sink.emit([report])
        elif kind == "error":
            log.warning("kite ticker error message", extra={"detail": str(body.get("data"))[:500]})


__all__ = ["KiteTicker", "KiteTickerStats", "TickState", "tick_events"]
