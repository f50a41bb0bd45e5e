"""/readyz says what the gateway still waits for: its own checks, the configured services and tradable markets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from events import Bus, derived_id
from events.market import BookTop, Trade
from events.process import bound_port, start_service_http
from gateway.app import create_app
from gateway.readiness import parse_market, parse_service
from gateway.state import Gateway, GatewayConfig, ReadinessConfig
from processors.aggregator.tape import summarise
from projections.service import Projections
from tests.conftest import eventually


@dataclass
class Served:
    """A gateway whose /readyz waits for two markets and one service, and that service's switch."""

    client: TestClient  # type: ignore[type-arg]
    service_ready: list[bool]


@pytest.fixture
async def served(tmp_path: Path, bus: Bus) -> AsyncIterator[Served]:
    """Gateway with projections following the bus; the `risk` service's readiness is a switch the test flips."""
    switch = [False]
    service = await start_service_http(0, lambda: switch[0], host="127.0.0.1",
                                       details=lambda: {"lag_events": 3})
    readiness = ReadinessConfig(books=(("binance", "AAAUSDT"), ("binance", "BBBUSDT")),
                                trades=(("binance", "AAAUSDT"),),
                                services=(("risk", f"http://127.0.0.1:{bound_port(service)}/readyz"),))
    projections = Projections(tmp_path / "wal", tmp_path / "projections")
    gateway = Gateway.open(GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False, readiness=readiness), bus,
                           projections)
    stop = asyncio.Event()
    follow = asyncio.create_task(projections.follow(bus, stop))
    client = TestClient(TestServer(create_app(gateway)))
    await client.start_server()
    yield Served(client, switch)
    await client.close()
    stop.set()
    await follow
    await service.cleanup()


def _top(symbol: str, bid: str | None, ask: str | None) -> BookTop:
    now = time.time_ns()
    return BookTop(id=derived_id(f"top:{symbol}:{bid}:{ask}", "t", now), ts=now, venue="binance", symbol=symbol,
                   last_update_id=1, bid_price=None if bid is None else Decimal(bid),
                   bid_size=None if bid is None else Decimal(1), ask_price=None if ask is None else Decimal(ask),
                   ask_size=None if ask is None else Decimal(1))


async def _readyz(client: TestClient) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    response = await client.get("/readyz")
    return response.status, await response.json()


async def test_readyz_when_markets_and_services_are_missing_then_503_naming_each_until_all_arrive(
        served: Served, bus: Bus) -> None:
    async def caught_up() -> bool:
        _, body = await _readyz(served.client)
        return bool(body["checks"].get("projections_caught_up"))

    await eventually(caught_up, message="projections caught up")
    status, body = await _readyz(served.client)
    assert status == 503 and body["ready"] is False
    assert body["waiting_for"] == {"checks": [], "services": ["risk"],
                                   "book": ["binance:AAAUSDT", "binance:BBBUSDT"], "last_trade": ["binance:AAAUSDT"]}
    assert body["services"]["risk"] == {"ready": False, "lag_events": 3}

    # A one-sided top is no book to trade against; a trade of the other symbol is no last trade of this one.
    await bus.publish(_top("AAAUSDT", "1.0", "1.1"))
    await bus.publish(_top("BBBUSDT", "2.0", None))
    now = time.time_ns()
    await bus.publish(summarise(Trade(id=derived_id("trade:B", "t", now), ts=now, venue="binance",
                                      symbol="BBBUSDT", price=Decimal("2.0"), quantity=Decimal(1))))

    async def only_b_book_and_a_trade_missing() -> bool:
        _, body = await _readyz(served.client)
        return body["waiting_for"]["book"] == ["binance:BBBUSDT"] and "BBBUSDT" not in str(body["waiting_for"]
                                                                                         ["last_trade"])

    await eventually(only_b_book_and_a_trade_missing, message="AAAUSDT's book seen")
    status, body = await _readyz(served.client)
    assert status == 503 and body["waiting_for"]["last_trade"] == ["binance:AAAUSDT"]

    await bus.publish(_top("BBBUSDT", "2.0", "2.1"))
    now = time.time_ns()
    await bus.publish(summarise(Trade(id=derived_id("trade:A", "t", now), ts=now, venue="binance", symbol="AAAUSDT",
                            price=Decimal("1.05"), quantity=Decimal(1))))
    served.service_ready[0] = True

    async def ready() -> bool:
        status, _ = await _readyz(served.client)
        return status == 200

    await eventually(ready, message="ready once every market and service is")
    status, body = await _readyz(served.client)
    assert body["ready"] is True and body["waiting_for"] == {"checks": [], "services": [], "book": [],
                                                             "last_trade": []}
    assert body["services"]["risk"] == {"ready": True, "lag_events": 3}


async def test_readyz_when_a_configured_service_is_down_then_it_is_named_with_the_reason(
        tmp_path: Path, bus: Bus) -> None:
    # A port nothing listens on: bind one, then close it.
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = bound_port(probe)
    await probe.cleanup()
    config = GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False,
                           readiness=ReadinessConfig(services=(("router", f"http://127.0.0.1:{port}/readyz"),)))
    client = TestClient(TestServer(create_app(Gateway.open(config, bus))))
    await client.start_server()
    try:
        status, body = await _readyz(client)
    finally:
        await client.close()
    assert status == 503 and body["waiting_for"]["services"] == ["router"]
    assert body["services"]["router"]["ready"] is False and "Connect" in body["services"]["router"]["error"]


def test_ready_options_when_malformed_then_the_error_names_the_expected_form() -> None:
    assert parse_market("binance:NKNUSDT") == ("binance", "NKNUSDT")
    assert parse_service("risk=http://127.0.0.1:50053/readyz") == ("risk", "http://127.0.0.1:50053/readyz")
    with pytest.raises(ValueError, match="VENUE:SYMBOL"):
        parse_market("NKNUSDT")
    with pytest.raises(ValueError, match="NAME=http"):
        parse_service("risk=50053")
