"""Schemathesis against /openapi.json of a running gateway with fed projections: no 5xx, no schema violations,
and no status an operation does not document."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from events import Bar, Broker, Bus, ExecutionReport, OrderIntent, Trade, new_event_id
from events.market import BookTop
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig
from gateway.users import User
from processors.aggregator.tape import summarise
from projections.service import Projections
from tests.gateway.conftest import PASSWORD

EXAMPLES_PER_OPERATION = int(__import__("os").environ.get("SQ_FUZZ_EXAMPLES", "6"))
# Logging out would revoke the token the rest of the run uses.
SKIPPED = {("POST", "/v1/auth/logout")}


@dataclass
class Served:
    """A gateway on a real port, run on its own loop in a thread (schemathesis calls it synchronously)."""

    base_url: str
    token: str
    projections: Projections


def _sample_events() -> list[object]:
    now = time.time_ns()
    intent = OrderIntent(id=new_event_id(), ts=now, account="ACC1", client_order_id="fuzz-1", symbol="BTCUSDT",
                         side="BUY", quantity=Decimal("0.5"), limit_price=Decimal("100.5"))
    fill = ExecutionReport(id=new_event_id(), ts=now + 1, order_id=intent.id, child_id=new_event_id(),
                           account="ACC1", venue="SIM", symbol="BTCUSDT", side="BUY", status="FILLED",
                           last_quantity=Decimal("0.5"), last_price=Decimal("100.25"), cum_quantity=Decimal("0.5"),
                           fee=Decimal("0.01"), liquidity="TAKER")
    trade = summarise(Trade(id=new_event_id(), ts=now + 2, venue="SIM", symbol="BTCUSDT", price=Decimal("101"),
                            quantity=Decimal("0.1")))           # the aggregator's summary: what projections mark from
    bar = Bar(id=new_event_id(), ts=now + 3, venue="SIM", symbol="BTCUSDT", interval="1m", open_time=now,
              open=Decimal("100"), high=Decimal("102"), low=Decimal("99.5"), close=Decimal("101"),
              volume=Decimal("3.2"), trade_count=7)
    top = BookTop(id=new_event_id(), ts=now + 4, venue="SIM", symbol="BTCUSDT", last_update_id=9,
                  bid_price=Decimal("100.9"), bid_size=Decimal("1"), ask_price=Decimal("101.1"), ask_size=None,
                  imbalance=0.25)
    return [intent, fill, trade, bar, top]


async def _serve(broker: Broker, root: Path, started: threading.Event, box: dict[str, object],
                 stop: asyncio.Event) -> None:
    bus = await Bus.connect(broker.url, name="fuzz")
    await bus.ensure_streams()
    projections = Projections(root / "wal", root / "checkpoints", checkpoint_every_s=3600)
    # Limits raised: the fuzzer is one user at one address sending as fast as it can.
    config = GatewayConfig(data_dir=root / "gw", durable_ack=False, ip_rate_per_s=1e6, ip_burst=1e6,
                           user_rate_per_s=1e6, user_burst=1e6)
    gateway = Gateway.open(config, bus, projections)
    gateway.users.add("root", PASSWORD, ["admin"], [])
    following = asyncio.create_task(projections.follow(bus, stop))
    for event in _sample_events():
        await bus.publish(event)  # type: ignore[arg-type]
    while projections.state.version < 5:
        await asyncio.sleep(0.01)
    runner = web.AppRunner(create_app(gateway))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token, _, _ = gateway.tokens.issue(User("root", ("admin",), ()), int(time.time()))
    box["served"] = Served(f"http://127.0.0.1:{port}", token, projections)
    started.set()
    await stop.wait()
    await runner.cleanup()
    await following
    await bus.close()


@pytest.fixture
def served(broker: Broker, tmp_path: Path) -> Iterator[Served]:
    """The gateway, with projections fed a few events, served from a thread."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: loop.run_until_complete(_serve(broker, tmp_path, started, box, stop)),
                              daemon=True)
    thread.start()
    assert started.wait(30), "gateway did not start within 30 s"
    yield box["served"]  # type: ignore[misc]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


def test_every_operation_answers_without_5xx_and_matches_its_documented_schema(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {served.token}"}
    session = requests.Session()
    failures: list[str] = []
    calls = 0
    # ok() raises on an operation the loader found invalid: that is a failure of the document itself.
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=served.base_url, session=session, headers=headers, timeout=10)
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                                                 status_code_conformance],
                                       headers=headers)
            except AssertionError as exc:  # schemathesis raises a FailureGroup (an AssertionError) per case
                failures.append(f"{case.operation.method.upper()} {case.operation.path}: {exc}")

        exercise()
    print(f"schemathesis: {calls} calls over {len(operations)} operations")
    assert calls >= 60
    assert not failures, "\n\n".join(failures[:10])


def test_openapi_lists_every_registered_route(served: Served) -> None:
    document = requests.get(f"{served.base_url}/openapi.json", timeout=10).json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    expected = {("GET", p) for p in ("/v1/orders", "/v1/orders/{order_id}", "/v1/fills", "/v1/decisions",
                                      "/v1/positions", "/v1/pnl",
                                      "/v1/candles", "/v1/book/{venue}/{symbol}", "/v1/audit/orders/{order_id}",
                                      "/v1/ws")} | {("POST", "/v1/query"), ("POST", "/v1/orders")}
    assert expected <= documented
    positions = requests.get(f"{served.base_url}/v1/positions", headers={"Authorization": f"Bearer {served.token}"},
                             timeout=10).json()
    assert Decimal(positions["positions"][0]["quantity"]) == Decimal("0.5")


def test_openapi_when_an_operation_has_known_error_answers_then_it_documents_each(served: Served) -> None:
    document = requests.get(f"{served.base_url}/openapi.json", timeout=10).json()

    def codes(method: str, path: str) -> set[str]:
        return set(document["paths"][path][method]["responses"])

    # Answers each route really gives (wrong password, throttled, oversize body, reused key, broker down …).
    assert {"200", "400", "401", "413", "429"} <= codes("post", "/v1/auth/login")
    assert {"202", "400", "401", "403", "413", "422", "429", "503", "504"} <= codes("post", "/v1/orders")
    assert {"202", "400", "401", "403", "404", "429", "503", "504"} <= codes("delete", "/v1/orders/{order_id}")
    assert {"200", "400", "401", "403", "404", "429", "503"} <= codes("get", "/v1/orders/{order_id}")
    assert {"200", "400", "401", "403", "404", "429"} <= codes("get", "/v1/depth/{venue}/{symbol}")
    assert {"200", "429", "503"} <= codes("get", "/readyz")
    assert {"101", "400", "401", "403", "429"} <= codes("get", "/v1/ws")
    header = [p for p in document["paths"]["/v1/orders"]["post"]["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Idempotency-Key"]
    assert "client_order_id" not in document["components"]["schemas"]["OrderIntent"]["required"]
