"""The gateway as a service: bus, projections following the WAL and JetStream, and the HTTP app."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from events.bus import Bus
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig
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


async def start_gateway(bus: Bus, *, data_dir: Path, host: str, port: int,
                        durable_ack: bool = True) -> RunningGateway:
    """Open secrets and projections under `data_dir` and serve HTTP on host:port."""
    projections = Projections(data_dir / "wal", data_dir / "projections")
    gateway = Gateway.open(GatewayConfig(data_dir=data_dir, durable_ack=durable_ack), bus, projections)
    stop = asyncio.Event()
    task = asyncio.create_task(projections.follow(bus, stop))
    runner = web.AppRunner(create_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("gateway listening", extra={"host": host, "port": port})
    return RunningGateway(gateway, runner, task, stop)
