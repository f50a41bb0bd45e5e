"""`sq processor binance`: the Binance spot live connector as a service (market data, and with --trade, orders).

Market data: the combined stream for `--symbols`, books kept in sync with REST snapshots, every
event published on `sq.md.*`, bad messages on `sq.dlq.binance`. With `--trade`, child orders and
cancels on `sq.exec.child.binance.>` are sent as signed REST calls with the key from the
credential store (`sq creds set binance --field api_key|api_secret`), within the venue's limits
(`--orders-per-10s`, `--weight-per-minute`); the venue's answers and the user-data stream
(`userDataStream.subscribe.signature`, listenKey fallback) are published as ExecutionReports and
VenuePositionsReported for `--account`. Ready (`/readyz`) once connected with every book in sync
(and, with --trade, the user-data stream subscribed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp

from events._base import TOKEN_PATTERN
from events.codec import AnyEvent
from events.consumer import ConsumerRunner, ConsumerSpec, Delivery
from events.logs import configure_logging
from events.process import add_service_arguments, connect_bus, start_service_http, stop_on_signals
from events.subjects import STREAM_TRADING, InvalidSubjectToken, token
from events.trading import ChildCancel, ChildOrder
from processors.connector.binance.live import DEFAULT_STREAMS, BinanceFeed, BinanceUrls
from processors.connector.binance.orders import BinanceOrderError, BinanceOrders
from processors.connector.binance.userdata import UserDataStream, UserDataUrls
from processors.connector.credentials import CredentialError, CredentialStore
from processors.connector.limits import Limit, VenueLimiter
from processors.connector.restore import restore_orders
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)
DEFAULT_PORT = 50052
ALLOWED_STREAMS = ("trade", "aggTrade", "bookTicker", "depth", "depth@100ms", "kline_1s", "kline_1m", "kline_3m",
                   "kline_5m", "kline_15m", "kline_30m", "kline_1h", "kline_4h", "kline_1d")
MAX_SYMBOLS = 200  # a combined stream carries at most 1024 streams; 5 per symbol keeps well inside


class RunnerConfigError(ValueError):
    """A command-line option is invalid; `field`, `value` and `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


def parse_symbols(text: str) -> list[str]:
    """`NKNUSDT,blzeth` -> ["NKNUSDT", "BLZETH"], each a legal subject token."""
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not symbols:
        raise RunnerConfigError("--symbols", text, "names no symbol")
    if len(symbols) > MAX_SYMBOLS:
        raise RunnerConfigError("--symbols", len(symbols), f"symbols exceed the limit {MAX_SYMBOLS}")
    try:
        return [token("symbol", symbol) for symbol in symbols]
    except InvalidSubjectToken as exc:
        raise RunnerConfigError("--symbols", exc.value, "is not a symbol of [A-Za-z0-9_-]") from exc


def parse_streams(text: str) -> list[str]:
    """`trade,depth@100ms` -> the stream names, each one Binance offers and we parse."""
    streams = [part.strip() for part in text.split(",") if part.strip()]
    bad = [s for s in streams if s not in ALLOWED_STREAMS]
    if bad or not streams:
        raise RunnerConfigError("--streams", ",".join(bad) or text, f"is not among {', '.join(ALLOWED_STREAMS)}")
    return streams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor binance`."""
    parser.add_argument("--symbols", required=True, help="comma-separated spot symbols, e.g. NKNUSDT,BTCUSDT")
    parser.add_argument("--streams", default=",".join(DEFAULT_STREAMS), help="comma-separated stream kinds")
    parser.add_argument("--ws-url", default=BinanceUrls.ws, help=f"WebSocket base URL (default {BinanceUrls.ws})")
    parser.add_argument("--rest-url", default=BinanceUrls.rest, help=f"REST base URL (default {BinanceUrls.rest})")
    parser.add_argument("--trade", action="store_true",
                        help="also execute child orders from sq.exec.child.binance.> (needs `sq creds set binance`)")
    parser.add_argument("--recv-window-ms", type=int, default=5000, help="recvWindow of signed requests")
    parser.add_argument("--ws-api-url", default=UserDataUrls.ws_api,
                        help=f"WebSocket API URL for the user-data stream (default {UserDataUrls.ws_api})")
    parser.add_argument("--user-stream", choices=("auto", "signature", "listen_key"), default="auto",
                        help="user-data subscription: WebSocket API signature, deprecated listenKey, or auto "
                             "(signature, falling back to listenKey if refused)")
    parser.add_argument("--account", default="ACC1", help="our account the API key trades for (positions reports)")
    parser.add_argument("--orders-per-10s", type=int, default=100, help="Binance ORDERS limit per 10 s")
    parser.add_argument("--orders-per-day", type=int, default=200_000, help="Binance ORDERS limit per day")
    parser.add_argument("--weight-per-minute", type=int, default=6000, help="Binance REQUEST_WEIGHT limit per minute")
    add_service_arguments(parser, default_port=DEFAULT_PORT, data_dir_help="data directory (credentials in DATA_DIR/secrets)")


def main(args: argparse.Namespace) -> int:
    """Run the Binance connector until SIGINT/SIGTERM."""
    try:
        symbols, streams = parse_symbols(args.symbols), parse_streams(args.streams)
        if not re.fullmatch(TOKEN_PATTERN, args.account):
            raise RunnerConfigError("--account", args.account, f"must match {TOKEN_PATTERN}")
        for name in ("orders_per_10s", "orders_per_day", "weight_per_minute"):
            if getattr(args, name) < 1:
                raise RunnerConfigError(f"--{name.replace('_', '-')}", getattr(args, name), "must be at least 1")
        creds = CredentialStore(args.data_dir).get("binance") if args.trade else None
    except (RunnerConfigError, CredentialError) as exc:
        print(f"binance: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, symbols, streams, creds))


def order_handler(orders: BinanceOrders, sink: FeedSink):  # type: ignore[no-untyped-def]
    """The consumer handler: ChildOrder -> place, ChildCancel -> cancel, reports onto the bus."""

    async def handle(event: AnyEvent, delivery: Delivery) -> None:
        match event:
            case ChildOrder() if event.venue == "binance":
                if event.child_id in orders.known:
                    return  # a redelivery of a child already placed: its reports were published
                await sink.emit(await orders.place(event, recv_ts=delivery.timestamp_ns))
            case ChildCancel() if event.venue == "binance":
                try:
                    await sink.emit(await orders.cancel(event))
                except BinanceOrderError as exc:
                    await sink.reject(delivery.subject, f"cancel refused: {exc}", event.id, ts=delivery.timestamp_ns)

    return handle


async def _serve(args: argparse.Namespace, symbols: list[str], streams: list[str], creds: object) -> int:
    configure_logging("binance", args.log_level)
    bus = await connect_bus(args, "connector-binance")
    stop = stop_on_signals()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        sink = FeedSink(bus, "binance")
        feed = BinanceFeed(http, BinanceUrls(ws=args.ws_url, rest=args.rest_url), symbols, sink, streams=streams)
        user: UserDataStream | None = None

        def ready() -> bool:
            return (feed.connected.is_set() and all(feed.synced(s) for s in symbols)
                    and (user is None or user.subscribed.is_set()))

        service = await start_service_http(args.port, ready=ready, host=args.host)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(feed.run(stop))]
        consumer = None
        if creds is not None:
            limiter = VenueLimiter("binance", (Limit("orders", args.orders_per_10s, 10),
                                               Limit("orders_day", args.orders_per_day, 86_400),
                                               Limit("weight", args.weight_per_minute, 60)))
            orders = BinanceOrders(http, args.rest_url, creds, recv_window_ms=args.recv_window_ms,  # type: ignore[arg-type]
                                   limiter=limiter)
            restored = await restore_orders("binance", orders.book.restore, bus, Path(args.data_dir) / "wal")
            log.info("restored children from the log", extra={"events": restored,
                                                               "working": len(orders.book.working())})
            user = UserDataStream(http, orders, sink, account=args.account, symbols=symbols,
                                  urls=UserDataUrls(ws_api=args.ws_api_url, ws_stream=args.ws_url),
                                  mode=args.user_stream)
            tasks.append(asyncio.create_task(user.run(stop)))
            spec = ConsumerSpec(stream=STREAM_TRADING.name, durable="connector-binance-orders",
                                filter_subjects=("sq.exec.child.binance.>",))
            consumer = ConsumerRunner(bus, spec, order_handler(orders, sink), source="binance")
            tasks.append(asyncio.create_task(consumer.run()))
        log.info("started", extra={"processor": "binance", "symbols": symbols, "trade": creds is not None})
        try:
            await stop.wait()
        finally:
            if consumer is not None:
                consumer.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.cleanup()
    await bus.close()
    log.info("stopped", extra={"processor": "binance", "events": feed.stats.events,
                               "dead_lettered": sink.dead_lettered})
    return 0


def _cli() -> int:
    parser = argparse.ArgumentParser(prog="sq processor binance")
    add_arguments(parser)
    return main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(_cli())


__all__ = ["add_arguments", "main", "order_handler", "parse_streams", "parse_symbols"]
