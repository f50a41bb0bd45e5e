"""On the in-process stack (real broker, recorder, risk, router, venue sim): audit, TCA, blotter and daily routes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from events import OrderIntent, TwapAlgo, intent_id_for
from events.subjects import STREAM_TRADING
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig
from gateway.users import User
from processors.reporting.audit import UNSEALED, audit_order
from projections.blotter import CompletionLog
from store.reader import WalReader
from tests.conftest import eventually
from tests.pipeline.conftest import Stack, publish_market, stack  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]


async def _twap_filled(stack: Stack) -> OrderIntent:  # noqa: F811
    """Quote XYZ 9.99/10.01 with a trade at 10, buy 20 by TWAP in 2 slices, wait for the fill and its TCA in the WAL."""
    now = time.time_ns()
    await publish_market(stack.bus, now, stack.hosts)
    intent = OrderIntent(id=intent_id_for("ACC1", "rep-1"), ts=now, account="ACC1", client_order_id="rep-1",
                         symbol="XYZ", side="BUY", quantity=D("20"), limit_price=D("10.50"),
                         algo=TwapAlgo(duration_s=0.4, slices=2))
    await stack.bus.publish(intent)
    log = CompletionLog(stack.data_dir / "wal")
    await eventually(lambda: any(c.order_id == intent.id for c in log.refresh()), timeout=30,
                     message="TCA of the TWAP order recorded in the WAL")
    await eventually(lambda: (o := stack.projections.state.orders.get(intent.id)) is not None
                     and o.status == "FILLED", message="order filled in the projections")
    return intent


async def test_audit_of_a_stack_order_names_every_event_with_its_wal_bytes(stack: Stack) -> None:  # noqa: F811
    intent = await _twap_filled(stack)
    trail = audit_order(stack.data_dir, intent.id)
    types = [e.event_type for e in trail.entries]
    assert types[0] == "OrderIntent" and types[1] == "RiskDecision" and types[-1] == "ParentOrderCompleted"
    assert types.count("ChildOrder") == 2 and types.count("ExecutionReport") >= 2
    assert trail.entries[1].event["accepted"] is True and trail.entries[1].event["checks_run"] > 0
    directory = stack.data_dir / "wal" / STREAM_TRADING.name
    by_position = {(r.segment.name, r.offset): r for r in WalReader(directory, persist_index=False).records()}
    for entry in trail.entries:
        stored = by_position[(entry.segment, entry.offset)]
        assert stored.seq == entry.seq and json.loads(bytes(stored.payload))["id"] == entry.event_id
        assert entry.seal == UNSEALED  # one small tail segment: nothing sealed yet
    assert [e.seq for e in trail.entries] == sorted(e.seq for e in trail.entries)
    assert D(trail.entries[-1].event["shortfall_bps"]) == D(10)  # as on the wire: "10.0000"
    done = subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", "audit", intent.id,
                           "--data-dir", str(stack.data_dir), "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert [e["event_id"] for e in json.loads(done.stdout)["events"]] == [e.event_id for e in trail.entries]


async def test_report_routes_on_a_running_stack_show_tca_blotter_and_daily_for_the_callers_accounts(
        stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    intent = await _twap_filled(stack)
    gateway = Gateway.open(GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False), stack.bus, stack.projections)
    now = int(time.time())
    tokens = {name: gateway.tokens.issue(User(name, roles, accounts), now)[0] for name, roles, accounts in
              (("alice", ("trader",), ("ACC1",)), ("vic", ("viewer",), ("ACC2",)))}
    client = TestClient(TestServer(create_app(gateway)))
    await client.start_server()
    try:
        async def get(user: str, path: str, **query: str) -> dict:  # type: ignore[type-arg]
            response = await client.get(path, params=query, headers={"Authorization": f"Bearer {tokens[user]}"})
            assert response.status == 200, await response.text()
            return await response.json()  # type: ignore[no-any-return]

        tca = (await get("alice", "/v1/reports/tca"))["tca"]
        whole = next(r for r in tca if r["algo"] == "TWAP" and r["venue"] == "ALL")
        assert whole["orders"] == 1 and whole["filled_quantity"] == "20" and whole["avg_shortfall_bps"] == "10"
        venues = [r for r in tca if r["algo"] == "TWAP" and r["venue"] != "ALL"]
        assert sum(D(r["filled_quantity"]) for r in venues) == D(20)
        fills = (await get("alice", "/v1/reports/blotter"))["fills"]
        assert {f["order_id"] for f in fills} == {intent.id} and sum(D(f["quantity"]) for f in fills) == D(20)
        assert all(f["price"] == "10.01" and f["liquidity"] for f in fills)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        daily = (await get("alice", "/v1/reports/daily", date=today))["accounts"]
        assert daily[0]["account"] == "ACC1" and daily[0]["fills"] == len(fills)
        assert D(daily[0]["turnover"]) == D("200.2")
        assert (await get("vic", "/v1/reports/tca"))["tca"] == []
    finally:
        await client.close()
