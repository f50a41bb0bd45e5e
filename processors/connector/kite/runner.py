"""`sq processor kite`: Zerodha Kite as a service — market data, and with --trade, orders, updates and postbacks.

On start it logs in with the stored credentials (`sq creds set kite --field user_id|password|
totp_seed|api_key|api_secret`) and a TOTP generated from the seed, resolves `--instruments`
(`NSE:INFY,...`) to instrument tokens from the day's instruments list (cached under
`<data-dir>/kite`), and streams the ticker into Trade, BookSnapshot and BookTop events. With
`--trade`, ChildOrder/ChildCancel on `sq.exec.child.kite.>` go to the orders API within Kite's
limits (10 orders/s, 200/min), order updates from the ticker and from the postback endpoint
(`--postback-port`, POST /kite/postback, checksum checked) become ExecutionReports. Every day at
06:00 IST, when Kite voids every access token, the session is renewed with a fresh TOTP, the
instruments list is fetched again and the ticker reconnects with the new token. Ready (`/readyz`)
once the ticker is connected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from events.codec import AnyEvent
from events.consumer import ConsumerRunner, ConsumerSpec, Delivery
from events.logs import configure_logging
from events.process import add_service_arguments, connect_bus, start_service_http, stop_on_signals
from events.subjects import STREAM_TRADING
from events.trading import ChildCancel, ChildOrder
from processors.connector.credentials import CredentialError, CredentialStore, KiteCredentials, SessionCache
from processors.connector.kite.instruments import InstrumentCache, InstrumentError, parse_wanted
from processors.connector.kite.orders import KiteInstrument, KiteOrders, OrderMappingError, PlacementUnknown
from processors.connector.kite.postback import postback_app
from processors.connector.kite.session import KiteError, KiteSession, KiteUrls
from processors.connector.kite.stream import KiteTicker
from processors.connector.restore import restore_orders
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)
DEFAULT_PORT = 50060
RETRY_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor kite`."""
    urls = KiteUrls()
    parser.add_argument("--instruments", required=True, help="comma-separated EXCHANGE:TRADINGSYMBOL, e.g. NSE:INFY")
    parser.add_argument("--mode", choices=("ltp", "quote", "full"), default="full", help="ticker mode")
    parser.add_argument("--login-url", default=urls.login, help=f"Kite web login base URL (default {urls.login})")
    parser.add_argument("--connect-url", default=urls.connect, help=f"Kite Connect login URL (default {urls.connect})")
    parser.add_argument("--api-url", default=urls.api, help=f"Kite Connect API base URL (default {urls.api})")
    parser.add_argument("--ws-url", default=urls.ws, help=f"KiteTicker WebSocket URL (default {urls.ws})")
    parser.add_argument("--trade", action="store_true", help="also execute child orders from sq.exec.child.kite.>")
    parser.add_argument("--product", choices=("CNC", "MIS", "NRML"), default="CNC", help="Kite product of orders")
    parser.add_argument("--postback-host", default="127.0.0.1", help="postback endpoint address (behind TLS proxy)")
    parser.add_argument("--postback-port", type=int, default=50061, help="postback endpoint port (0: none)")
    add_service_arguments(parser, default_port=DEFAULT_PORT, data_dir_help="data directory (credentials in DATA_DIR/secrets)")


def main(args: argparse.Namespace) -> int:
    """Run the Kite connector until SIGINT/SIGTERM."""
    try:
        wanted = parse_wanted(args.instruments)
        creds = CredentialStore(args.data_dir).get("kite")
    except (InstrumentError, CredentialError) as exc:
        print(f"kite: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, wanted, creds))  # type: ignore[arg-type]
    except (KiteError, InstrumentError) as exc:
        print(f"kite: {exc}", file=sys.stderr)
        return 1


def order_handler(orders: KiteOrders, sink: FeedSink):  # type: ignore[no-untyped-def]
    """The consumer handler: ChildOrder -> place, ChildCancel -> cancel; reports onto the bus."""

    async def handle(event: AnyEvent, delivery: Delivery) -> None:
        match event:
            case ChildOrder() if event.venue == "kite":
                if event.child_id in orders.placed:
                    return  # a redelivery of a child already sent: its report was published
                try:
                    await sink.emit([await orders.place(event, recv_ts=delivery.timestamp_ns)])
                except PlacementUnknown as exc:  # not sent again; an operator must look at Kite's order book
                    await sink.reject(delivery.subject, str(exc), event.id, ts=delivery.timestamp_ns)
            case ChildCancel() if event.venue == "kite":
                try:
                    await orders.cancel(event)  # the CANCELLED report arrives as an order update
                except (KiteError, OrderMappingError) as exc:
                    await sink.reject(delivery.subject, f"cancel refused: {exc}", event.id, ts=delivery.timestamp_ns)

    return handle


def tokens_of(instruments: dict[str, KiteInstrument]) -> dict[int, str]:
    """Instrument token -> our symbol, what the ticker subscribes to."""
    return {i.instrument_token: s for s, i in instruments.items() if i.instrument_token is not None}


async def renew_daily(session: KiteSession, ticker: KiteTicker, cache: InstrumentCache,
                      wanted: list[tuple[str, str]], stop: asyncio.Event, *,
                      on_instruments: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 60.0) -> None:
    """At each renewal time (06:00 IST): a fresh login, the day's instruments, and the ticker on the new token."""
    while not stop.is_set():
        due = session.renewal_due()
        wait = 0.0 if due is None else max((due - session.cache.now()).total_seconds(), 0.0)
        try:
            # Wake at least every poll_s: the session clock, not the event loop's, says when it is due.
            await asyncio.wait_for(stop.wait(), min(wait, poll_s))
            return
        except TimeoutError:
            pass
        try:
            if not await session.renew_if_due():
                continue
            instruments = await cache.resolve(wanted)
        except (KiteError, InstrumentError, aiohttp.ClientError, OSError) as exc:
            log.error("kite session renewal failed; retrying", extra={"error": str(exc)})
            try:
                await asyncio.wait_for(stop.wait(), RETRY_S)
            except TimeoutError:
                pass
            continue
        log.info("kite session renewed", extra={"instruments": len(instruments)})
        if on_instruments is not None:
            on_instruments(instruments)
        await ticker.resubscribe(tokens_of(instruments))
        await ticker.reconnect()


async def _serve(args: argparse.Namespace, wanted: list[tuple[str, str]], creds: KiteCredentials) -> int:
    configure_logging("kite", args.log_level)
    urls = KiteUrls(login=args.login_url, connect=args.connect_url, api=args.api_url, ws=args.ws_url)
    bus = await connect_bus(args, "connector-kite")
    stop = stop_on_signals()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        session = KiteSession(http, creds, urls, SessionCache(args.data_dir, clock=lambda: datetime.now(UTC)))
        await session.token()
        cache = InstrumentCache(session, args.data_dir)
        instruments = await cache.resolve(wanted)
        sink = FeedSink(bus, "kite")
        orders = KiteOrders(session, instruments, product=args.product) if args.trade else None
        if orders is not None:
            restored = await restore_orders("kite", orders.restore, bus, Path(args.data_dir) / "wal")
            log.info("restored children from the log", extra={"events": restored, "tracked": len(orders.tracks)})
        ticker = KiteTicker(session, tokens_of(instruments), sink, orders=orders, mode=args.mode)
        service = await start_service_http(args.port, ready=ticker.connected.is_set, host=args.host)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(ticker.run(stop))]

        def refreshed(new: dict[str, Any]) -> None:
            if orders is not None:
                orders.instruments = new

        tasks.append(asyncio.create_task(renew_daily(session, ticker, cache, wanted, stop, on_instruments=refreshed)))
        consumer, postbacks = None, None
        if orders is not None:
            spec = ConsumerSpec(stream=STREAM_TRADING.name, durable="connector-kite-orders",
                                filter_subjects=("sq.exec.child.kite.>",))
            consumer = ConsumerRunner(bus, spec, order_handler(orders, sink), source="kite")
            tasks.append(asyncio.create_task(consumer.run()))
            if args.postback_port:
                postbacks = web.AppRunner(postback_app(orders, sink, bus, creds.api_secret), access_log=None)
                await postbacks.setup()
                await web.TCPSite(postbacks, args.postback_host, args.postback_port).start()
        log.info("started", extra={"processor": "kite", "instruments": sorted(instruments), "trade": args.trade})
        try:
            await stop.wait()
        finally:
            if consumer is not None:
                consumer.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            if postbacks is not None:
                await postbacks.cleanup()
            await service.cleanup()
    await bus.close()
    log.info("stopped", extra={"processor": "kite", "dead_lettered": sink.dead_lettered})
    return 0


def _cli() -> int:
    parser = argparse.ArgumentParser(prog="sq processor kite")
    add_arguments(parser)
    return main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(_cli())


__all__ = ["add_arguments", "main", "order_handler", "renew_daily", "tokens_of"]
