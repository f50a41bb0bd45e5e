"""`sq processor binance` as a process: streams from the stand-in onto a real broker, ready when synced, stops clean."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from events import BookSnapshot, Broker, Bus, Trade
from events.broker import free_port
from processors.connector.binance.runner import RunnerConfigError, parse_streams, parse_symbols
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.conftest import collect, serve

REPO = Path(__file__).resolve().parents[2]


def test_symbols_and_streams_are_parsed_at_the_edge_with_named_errors() -> None:
    assert parse_symbols("nknusdt, BLZETH") == ["NKNUSDT", "BLZETH"]
    with pytest.raises(RunnerConfigError, match="--symbols 'BTC.USDT'"):
        parse_symbols("BTC.USDT")
    with pytest.raises(RunnerConfigError, match="--streams 'depth@1ms'"):
        parse_streams("trade,depth@1ms")


async def test_runner_process_publishes_market_data_and_reports_ready(broker: Broker, bus: Bus,
                                                                      tmp_path: Path) -> None:
    venue = BinanceStandIn("k", "s")
    seen = await collect(bus)
    port = free_port()
    async with serve(make_app(venue)) as base:
        env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "processors.connector.binance.runner", "--symbols", "NKNUSDT,LRCBTC",
            "--ws-url", base.replace("http", "ws"), "--rest-url", base, "--nats-url", broker.url,
            "--port", str(port), "--data-dir", str(tmp_path), "--log-level", "WARNING", cwd=REPO, env=env)
        try:
            await eventually(lambda: any(isinstance(e, BookSnapshot) for e in seen())
                             and any(isinstance(e, Trade) for e in seen()), message="events on the bus")

            async def ready() -> bool:
                async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    return r.status == 200

            await eventually(ready, message="/readyz")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    assert {e.symbol for e in seen() if isinstance(e, BookSnapshot)} == {"NKNUSDT", "LRCBTC"}
