"""Binance spot live market data: the combined WebSocket stream with the documented local-book sync, onto the bus.

Per symbol it follows `trade`, `aggTrade`, `bookTicker`, `kline_<i>` and `depth@100ms`. Book sync
is Binance's procedure ("How to manage a local order book correctly"): open the stream and buffer
diffs; fetch `/api/v3/depth?symbol=..&limit=1000`; if its lastUpdateId is older than the first
buffered diff, fetch again; drop diffs with `u <= lastUpdateId`; then each diff must start at the
previous `u + 1`. A gap (or a crossed book) marks the book unsynced and refetches the snapshot.
A dropped connection loses diffs, so every book resyncs after a reconnect (with backoff).

Every parsed message is published as its event (deltas included: the aggregator keeps its own
books from them plus the snapshots published here). A message that cannot be parsed, or a diff
that crosses the book, is dead-lettered on `sq.dlq.binance` and counted; the feed carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from prometheus_client import Counter

from events._base import Event
from events.market import BookDelta
from events.stopping import Stopped, unless_stopped
from processors.aggregator.book import Status
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.connector.binance.parse import VENUE_SPOT, FeedError, parse_snapshot, parse_ws
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)

DEFAULT_STREAMS = ("trade", "aggTrade", "bookTicker", "kline_1m", "depth@100ms")
SNAPSHOT_LIMIT = 1000
RESYNCS = Counter("sq_binance_resyncs_total", "Depth snapshots fetched to (re)sync a local book", ["symbol"])
GAPS = Counter("sq_binance_gaps_total", "Diff-depth sequence gaps and crosses detected", ["symbol", "kind"])
RECONNECTS = Counter("sq_binance_reconnects_total", "WebSocket reconnections after a drop")


@dataclass(frozen=True)
class BinanceUrls:
    """Base URLs of Binance spot: the WebSocket streams and the REST API."""

    ws: str = "wss://stream.binance.com:9443"
    rest: str = "https://api.binance.com"


def stream_url(ws_base: str, symbols: Sequence[str], streams: Sequence[str] = DEFAULT_STREAMS) -> str:
    """The combined-stream URL for these symbols and streams (`/stream?streams=a@x/b@y`)."""
    names = "/".join(f"{symbol.lower()}@{stream}" for symbol in symbols for stream in streams)
    return f"{ws_base.rstrip('/')}/stream?streams={names}"


@dataclass
class FeedStats:
    """What the feed did: connections, messages, events, snapshots, gaps and refused messages."""

    connects: int = 0
    messages: int = 0
    events: int = 0
    snapshots: int = 0
    gaps: int = 0
    crosses: int = 0
    rejected: int = 0


@dataclass
class _Symbol:
    sync: BookSync = field(default_factory=BookSync)
    fetching: asyncio.Task[None] | None = None


class BinanceFeed:
    """Follows Binance spot streams for some symbols, keeps their books in sync, and publishes to a FeedSink."""

    def __init__(self, http: aiohttp.ClientSession, urls: BinanceUrls, symbols: Sequence[str], sink: FeedSink, *,
                 streams: Sequence[str] = DEFAULT_STREAMS, venue: str = VENUE_SPOT, max_backoff_s: float = 30.0,
                 snapshot_retry_s: float = 0.5, batch_size: int = 512) -> None:
        self.http = http
        self.urls = urls
        self.symbols = [s.upper() for s in symbols]
        self.sink = sink
        self.streams = tuple(streams)
        self.venue = venue
        self.max_backoff_s = max_backoff_s
        self.snapshot_retry_s = snapshot_retry_s
        self.batch_size = batch_size
        self.books: dict[str, _Symbol] = {s: _Symbol() for s in self.symbols}
        self.stats = FeedStats()
        self.connected = asyncio.Event()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10 * batch_size)

    def synced(self, symbol: str) -> bool:
        """True when the symbol's local book is in sync with the venue."""
        return self.books[symbol.upper()].sync.book.synced

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop`: reconnect with exponential backoff after a drop, resyncing every book."""
        publisher = asyncio.create_task(self._publish(stop))
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    await self._connection(stop)
                    backoff = 0.1
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    log.warning("binance stream lost", extra={"error": repr(exc), "retry_s": backoff})
                self.connected.clear()
                self._reset_books()
                if stop.is_set():
                    break
                RECONNECTS.inc()
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, self.max_backoff_s)
        finally:
            self._reset_books()
            await publisher

    def _reset_books(self) -> None:
        # Diffs sent while we were away are lost: each book must start again from a snapshot.
        for entry in self.books.values():
            if entry.fetching is not None:
                entry.fetching.cancel()
        self.books = {s: _Symbol() for s in self.symbols}

    async def _connection(self, stop: asyncio.Event) -> None:
        url = stream_url(self.urls.ws, self.symbols, self.streams)
        async with self.http.ws_connect(url, heartbeat=60, max_msg_size=16 * 1024 * 1024) as ws:
            self.stats.connects += 1
            self.connected.set()
            log.info("binance stream connected", extra={"symbols": self.symbols})
            while True:
                try:
                    msg = await unless_stopped(ws.receive(), stop)
                except Stopped:
                    return
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self.on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await self.on_text(msg.data.decode("utf-8", "replace"))
                else:
                    raise aiohttp.ClientConnectionError(f"stream closed: {msg.type.name} {msg.data!r}")

    async def on_text(self, raw: str) -> None:
        """Handle one stream message: parse, publish, and feed diffs to the symbol's book sync."""
        recv_ts = time.time_ns()
        self.stats.messages += 1
        try:
            event = parse_ws(raw, self.venue, recv_ts)
        except FeedError as exc:
            await self._reject("binance.ws", str(exc), raw, recv_ts)
            return
        if event is None:
            return  # an in-progress kline: not a fact yet
        if isinstance(event, BookDelta):
            entry = self.books.get(event.symbol)
            if entry is None:
                await self._reject("binance.ws", f"symbol {event.symbol} was not subscribed", raw, recv_ts)
                return
            result = on_delta(entry.sync, event)
            if result.status is Status.GAP:
                self.stats.gaps += 1
                GAPS.labels(event.symbol, "gap").inc()
                log.warning("binance depth gap", extra={"symbol": event.symbol, "reason": result.reason})
            elif result.status is Status.CROSSED:
                self.stats.crosses += 1
                GAPS.labels(event.symbol, "crossed").inc()
                await self._reject("binance.ws", f"diff {event.first_update_id}..{event.last_update_id} crosses "
                                                 f"the {event.symbol} book: {result.reason}", raw, recv_ts)
            if result.needs_resync:
                self._fetch_snapshot(event.symbol)
        await self._queue.put(event)
        self.stats.events += 1

    async def _reject(self, where: str, reason: str, raw: str, ts: int) -> None:
        self.stats.rejected += 1
        await self.sink.reject(where, reason, raw, ts=ts)

    def _fetch_snapshot(self, symbol: str) -> None:
        entry = self.books[symbol]
        if entry.fetching is None or entry.fetching.done():
            entry.fetching = asyncio.create_task(self._snapshot(symbol, entry))

    async def _snapshot(self, symbol: str, entry: _Symbol) -> None:
        """Fetch snapshots until one is new enough to continue the buffered diffs."""
        url = f"{self.urls.rest.rstrip('/')}/api/v3/depth"
        while not entry.sync.book.synced:
            try:
                async with self.http.get(url, params={"symbol": symbol, "limit": str(SNAPSHOT_LIMIT)}) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                                          message=body[:200].decode("utf-8", "replace"))
                snapshot = parse_snapshot(body, self.venue, symbol, time.time_ns())
            except (TimeoutError, aiohttp.ClientError, OSError, FeedError) as exc:
                log.warning("binance snapshot failed", extra={"symbol": symbol, "error": repr(exc)})
                await asyncio.sleep(self.snapshot_retry_s)
                continue
            if entry is not self.books.get(symbol):
                return  # the connection was reset meanwhile; the new book fetches its own
            result = on_snapshot(entry.sync, snapshot)
            self.stats.snapshots += 1
            RESYNCS.labels(symbol).inc()
            await self._queue.put(snapshot)
            if result.needs_resync:
                # The snapshot is older than the buffered diffs (or they do not chain): fetch again.
                log.info("binance snapshot did not continue the diffs", extra={"symbol": symbol,
                                                                               "reason": result.reason})
                await asyncio.sleep(self.snapshot_retry_s)

    async def _publish(self, stop: asyncio.Event) -> None:
        """Drain the queue in batches onto the bus until stopped and empty."""
        while not (stop.is_set() and self._queue.empty()):
            try:
                first = await asyncio.wait_for(self._queue.get(), 0.2)
            except TimeoutError:
                continue
            batch = [first]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self.sink.emit(batch)


__all__ = ["DEFAULT_STREAMS", "BinanceFeed", "BinanceUrls", "FeedStats", "stream_url"]
