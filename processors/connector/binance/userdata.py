"""Binance spot user-data stream: order updates and balances over the WebSocket API, with gap recovery.

Current method (Binance WebSocket API docs): connect to `{ws_api}` (`wss://ws-api.binance.com:443/
ws-api/v3`) and send `userDataStream.subscribe.signature` with `apiKey`, `timestamp` and a
`signature` (HMAC-SHA256 of the parameters sorted by name, as `k=v&k=v`); the answer carries a
`subscriptionId`, and events then arrive as `{"subscriptionId": n, "event": {...}}`. Fallback
(deprecated, `mode="listen_key"`, or `auto` when the WebSocket API refuses the method): POST
`/api/v3/userDataStream` for a listenKey, read `{ws_stream}/ws/<listenKey>`, PUT it every 30 min.

`executionReport` events are folded by the shared `ExecutionBook` (fills by trade id, so a fill in a
REST answer and on the stream counts once); `outboundAccountPosition` updates the balances, which
are reported as VenuePositionsReported for the configured symbols. After every (re)subscription
the account's balances are fetched and `BinanceOrders.recover` asks `openOrders`/`myTrades` what
the working children did while the stream was down; what was missed is published, once. A
connection is closed and opened afresh before Binance's 24 h limit (`rotate_after_s`), with the
same recovery. The subscription request carries the key and a signature and is never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp
from prometheus_client import Counter

from events._base import Event
from events.stopping import Stopped, unless_stopped
from processors.connector.binance.executions import positions_report
from processors.connector.binance.orders import BinanceOrderError, BinanceOrders
from processors.connector.binance.signing import query_string, sign
from processors.connector.limits import LimitRefusal
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)
USER_EVENTS = Counter("sq_binance_user_events_total", "User-data stream events handled, by type and outcome",
                      ["event", "outcome"])
USER_CONNECTS = Counter("sq_binance_user_connects_total", "User-data stream subscriptions, by mode and cause",
                        ["mode", "cause"])
Mode = Literal["auto", "signature", "listen_key"]


@dataclass(frozen=True)
class UserDataUrls:
    """Where the WebSocket API and the (fallback) listenKey streams are."""

    ws_api: str = "wss://ws-api.binance.com:443/ws-api/v3"
    ws_stream: str = "wss://stream.binance.com:9443"


class SubscribeRefused(RuntimeError):
    """The venue refused the user-data subscription: Binance's `status`, `code` and message (never the key)."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"userDataStream.subscribe.signature refused: HTTP {status} code {code} {message}")
        self.status = status
        self.code = code
        self.message = message


class StreamEnded(ConnectionError):
    """The venue ended the subscription or the connection; reconnect and recover."""


def subscribe_request(api_key: str, api_secret: str, *, timestamp_ms: int, request_id: str,
                      recv_window_ms: int = 5000) -> dict[str, Any]:
    """The `userDataStream.subscribe.signature` request: parameters signed sorted by name (WebSocket API rule)."""
    params: dict[str, Any] = {"apiKey": api_key, "recvWindow": recv_window_ms, "timestamp": timestamp_ms}
    params["signature"] = sign(api_secret, query_string(sorted(params.items())))
    return {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}


@dataclass
class UserDataStats:
    """What the stream did: subscriptions, events, reports, recoveries and rotations."""

    connects: int = 0
    events: int = 0
    reports: int = 0
    recovered: int = 0
    rotations: int = 0
    unknown_orders: int = 0
    mode: str = ""


class UserDataStream:
    """Follows one account's user-data stream into ExecutionReports and VenuePositionsReported, reconnecting."""

    def __init__(self, http: aiohttp.ClientSession, orders: BinanceOrders, sink: FeedSink, *, account: str,
                 symbols: list[str], urls: UserDataUrls = UserDataUrls(), mode: Mode = "auto",
                 rotate_after_s: float = 23 * 3600, keepalive_s: float = 30 * 60, max_backoff_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.http = http
        self.orders = orders
        self.sink = sink
        self.account = account
        self.symbols = symbols
        self.urls = urls
        self.mode: Mode = mode
        self.rotate_after_s = rotate_after_s
        self.keepalive_s = keepalive_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.balances: dict[str, Decimal] = {}
        self.stats = UserDataStats()
        self.subscribed = asyncio.Event()
        self.listen_key_fallback = mode == "listen_key"

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe and follow until `stop`; after a drop, back off, resubscribe and recover what was missed."""
        backoff, cause = 0.1, "start"
        while not stop.is_set():
            try:
                rotated = await (self._listen_key_once(stop, cause) if self.listen_key_fallback
                                 else self._signature_once(stop, cause))
                backoff, cause = 0.1, "rotation" if rotated else "reconnect"
                if rotated:
                    continue
            except SubscribeRefused as exc:
                if self.mode == "auto" and not self.listen_key_fallback:
                    log.warning("user-data subscription refused; falling back to the listenKey stream",
                                extra={"status": exc.status, "code": exc.code})
                    self.listen_key_fallback = True
                    continue
                log.error("user-data subscription refused", extra={"status": exc.status, "code": exc.code,
                                                                   "reason": exc.message})
                cause = "reconnect"
            except (TimeoutError, aiohttp.ClientError, OSError, BinanceOrderError, LimitRefusal) as exc:
                # The type and Binance's own words only: aiohttp's messages can quote a URL with the listenKey.
                detail = str(exc) if isinstance(exc, BinanceOrderError | LimitRefusal) else type(exc).__name__
                log.warning("user-data stream lost", extra={"error": detail})
                cause = "reconnect"
            self.subscribed.clear()
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)
        self.subscribed.clear()

    async def _signature_once(self, stop: asyncio.Event, cause: str) -> bool:
        async with self.http.ws_connect(self.urls.ws_api, heartbeat=30) as ws:
            self.orders.limiter.acquire({"weight": 2})
            request_id = str(uuid.uuid4())
            creds = self.orders.creds
            await ws.send_str(json.dumps(subscribe_request(creds.api_key, creds.api_secret, request_id=request_id,
                                                           timestamp_ms=self.orders.clock_ms(),
                                                           recv_window_ms=self.orders.recv_window_ms)))
            while True:  # the answer to our request; events cannot come before it
                body = await self._receive(ws, stop, None)
                if body is None:
                    return False
                if body.get("id") == request_id:
                    break
            if body.get("status") != 200:
                error = body.get("error") or {}
                raise SubscribeRefused(int(body.get("status") or 0), error.get("code"), str(error.get("msg", "")))
            return await self._follow(ws, stop, "signature", cause, None)

    async def _listen_key_once(self, stop: asyncio.Event, cause: str) -> bool:
        answer = await self.orders.request("POST", "/api/v3/userDataStream", [], signed=False)
        key = str(answer["listenKey"])
        next_ping = [self.clock() + self.keepalive_s]

        async def keepalive() -> None:
            if self.clock() >= next_ping[0]:
                await self.orders.request("PUT", "/api/v3/userDataStream", [("listenKey", key)], signed=False)
                next_ping[0] = self.clock() + self.keepalive_s

        async with self.http.ws_connect(f"{self.urls.ws_stream}/ws/{key}", heartbeat=30) as ws:
            return await self._follow(ws, stop, "listen_key", cause, keepalive)

    async def _follow(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event, mode: str, cause: str,
                      keepalive: Callable[[], Awaitable[None]] | None) -> bool:
        """Recover, then read events until stop (False), a drop (raises), or the rotation deadline (True)."""
        self.stats.connects += 1
        self.stats.mode = mode
        USER_CONNECTS.labels(mode, cause).inc()
        deadline = self.clock() + self.rotate_after_s
        await self._after_subscribe()
        self.subscribed.set()
        log.info("user-data stream subscribed", extra={"mode": mode, "cause": cause})
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                self.stats.rotations += 1
                return True
            if keepalive is not None:
                await keepalive()  # checked on every message too: a busy stream must not let the key lapse
            wait = remaining if keepalive is None else min(remaining, self.keepalive_s)
            try:
                body = await self._receive(ws, stop, wait)
            except TimeoutError:
                continue
            if body is None:
                return False
            event = body.get("event") if mode == "signature" else body
            if isinstance(event, dict):
                await self.on_event(event, json.dumps(body))

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event,
                       timeout: float | None) -> dict[str, Any] | None:
        """The next JSON object, None once `stop` is set; StreamEnded when the venue closes."""
        while True:
            try:
                msg = await unless_stopped(ws.receive(), stop, timeout=timeout)
            except Stopped:
                return None
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise StreamEnded(f"user-data connection closed: {msg.type.name}")
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                body = json.loads(msg.data)
            except ValueError as exc:
                await self.sink.reject("binance.userdata", f"message is not JSON: {exc}", msg.data,
                                       ts=time.time_ns())
                continue
            if isinstance(body, dict):
                return body

    async def _after_subscribe(self) -> None:
        """Balances as they are now, and whatever the working children did while we were not listening."""
        account = await self.orders.balances()
        self.balances = {row["asset"]: Decimal(str(row["free"])) + Decimal(str(row["locked"]))
                         for row in account.get("balances", [])}
        update_ms = int(account.get("updateTime") or 0)
        events: list[Event] = [positions_report(self.account, self.balances, self.symbols,
                                                event_ms=update_ms, update_ms=update_ms)]
        missed = await self.orders.recover()
        self.stats.recovered += len(missed)
        self.stats.reports += len(missed)
        events.extend(missed)
        await self.sink.emit(events)

    async def on_event(self, event: dict[str, Any], raw: str) -> None:
        """One user-data event: order updates to reports, balances to a positions report."""
        kind = str(event.get("e", ""))
        self.stats.events += 1
        try:
            if kind == "executionReport":
                reports = self.orders.book.on_execution_report(event)
                if reports is None:
                    self.stats.unknown_orders += 1
                    USER_EVENTS.labels(kind, "not_ours").inc()
                    return
                self.stats.reports += len(reports)
                await self.sink.emit(reports)
            elif kind == "outboundAccountPosition":
                for row in event["B"]:
                    self.balances[str(row["a"])] = Decimal(str(row["f"])) + Decimal(str(row["l"]))
                await self.sink.emit([positions_report(self.account, self.balances, self.symbols,
                                                       event_ms=int(event["E"]), update_ms=int(event["u"]))])
            elif kind in ("eventStreamTerminated", "listenKeyExpired"):
                raise StreamEnded(f"venue ended the user-data stream: {kind}")
            else:
                USER_EVENTS.labels(kind or "unknown", "ignored").inc()
                return
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            USER_EVENTS.labels(kind or "unknown", "malformed").inc()
            await self.sink.reject("binance.userdata", f"malformed {kind or 'event'}: {exc!r}", raw,
                                   ts=time.time_ns())
            return
        USER_EVENTS.labels(kind, "handled").inc()


__all__ = ["Mode", "StreamEnded", "SubscribeRefused", "UserDataStats", "UserDataStream", "UserDataUrls",
           "subscribe_request"]
