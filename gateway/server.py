"""The gateway as a service: bus, projections following the WAL and JetStream, and the HTTP app."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from events.bus import Bus
from events.logs import configure_logging
from events.process import add_bus_arguments, connect_bus, stop_on_signals
from gateway.app import create_app
from gateway.readiness import parse_market, parse_service
from gateway.state import Gateway, GatewayConfig, ReadinessConfig
from projections.memory import use_returnable_memory
from projections.service import Projections

log = logging.getLogger(__name__)


@dataclass
class RunningGateway:
    """A started gateway: its shared state, the HTTP runner and the projections task."""

    gateway: Gateway
    runner: web.AppRunner
    projections_task: asyncio.Task[None]
    stop: asyncio.Event

    async def close(self) -> None:
        """Stop serving, let the projections write their checkpoint, and close."""
        self.stop.set()
        await self.runner.cleanup()
        await self.projections_task


# Finished projection rows go to disk once this many fills, decisions, audit rows and P&L points are in
# memory (projections.cold): about 2,500 orders at ~8 rows each, some 12 MB.
SPILL_AFTER_ROWS = 20_000


async def start_gateway(bus: Bus, *, data_dir: Path, host: str, port: int, durable_ack: bool = True,
                        readiness: ReadinessConfig | None = None) -> RunningGateway:
    """Open secrets and projections under `data_dir` and serve HTTP on host:port.

    `readiness` names the markets and services /readyz waits for besides the gateway's own checks.
    """
    use_returnable_memory()
    projections = Projections(data_dir / "wal", data_dir / "projections", spill_after_rows=SPILL_AFTER_ROWS)
    config = GatewayConfig(data_dir=data_dir, durable_ack=durable_ack, readiness=readiness or ReadinessConfig())
    gateway = Gateway.open(config, bus, projections)
    stop = asyncio.Event()
    task = asyncio.create_task(projections.follow(bus, stop))
    runner = web.AppRunner(create_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("gateway listening", extra={"host": host, "port": port})
    return RunningGateway(gateway, runner, task, stop)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq gateway`."""
    add_bus_arguments(parser)
    parser.add_argument("--data-dir", default="var", help="data directory: secrets/, wal/ (read), projections/")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--http-port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--no-durable-ack", action="store_true",
                        help="answer orders once JetStream has them, without waiting for the recorder's WAL")
    parser.add_argument("--ready-book", action="append", default=[], type=parse_market, metavar="VENUE:SYMBOL",
                        help="/readyz waits until this market has a two-sided book top (repeatable)")
    parser.add_argument("--ready-trade", action="append", default=[], type=parse_market, metavar="VENUE:SYMBOL",
                        help="/readyz waits until this market has a last trade (repeatable)")
    parser.add_argument("--ready-service", action="append", default=[], type=parse_service, metavar="NAME=URL",
                        help="/readyz waits until this service's /readyz URL answers 200, and shows its lag "
                             "(repeatable)")


def main(args: argparse.Namespace) -> int:
    """Serve the gateway until SIGINT/SIGTERM."""
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    configure_logging("gateway", args.log_level)
    bus = await connect_bus(args, "gateway")
    stop = stop_on_signals()
    running = await start_gateway(bus, data_dir=Path(args.data_dir), host=args.host, port=args.http_port,
                                  durable_ack=not args.no_durable_ack,
                                  readiness=ReadinessConfig(books=tuple(args.ready_book), trades=tuple(args.ready_trade),
                                                            services=tuple(args.ready_service)))
    try:
        await stop.wait()
    finally:
        await running.close()
        await bus.close()
    return 0
