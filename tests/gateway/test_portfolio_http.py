"""Portfolio routes on a gateway with projections: targets are published, a rebalance preview is priced."""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from events import Bus, ExecutionReport, TargetWeightsSet, Trade, decode, derived_id, subject_for
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig
from projections.service import Projections
from store.follow import Envelope
from tests.gateway.conftest import PASSWORD


async def test_targets_are_published_and_a_preview_prices_the_trades_from_marks(bus: Bus, tmp_path: Path) -> None:
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints")
    now = time.time_ns()
    fill = ExecutionReport(id=derived_id("o1", "fill"), ts=now, order_id="o1", child_id="c1", account="ACC1",
                           venue="SIM_A", symbol="AAA", side="BUY", status="FILLED", last_quantity=D("10"),
                           last_price=D("100"), cum_quantity=D("10"))
    marks = [Trade(id=derived_id(s, "mark"), ts=now, venue="SIM_A", symbol=s, price=p, quantity=D(1))
             for s, p in (("AAA", D("100")), ("BBB", D("50")))]
    projections.apply_all([Envelope(e, "SQ_TRADING", i + 1, subject_for(e), now, live=True)
                           for i, e in enumerate([fill, *marks])])
    gateway = Gateway.open(GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False), bus, projections)
    gateway.users.add("alice", PASSWORD, ["trader"], ["ACC1"])
    client = TestClient(TestServer(create_app(gateway)))
    await client.start_server()
    try:
        login = await client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD,
                                                          "totp": gateway.users.totp_now("alice")})
        headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
        body = {"account": "ACC1", "weights": {"AAA": 0.5, "BBB": 0.5}, "cash": "1000"}
        preview = await client.post("/v1/portfolio/rebalance/preview", json=body, headers=headers)
        answer = await preview.json()
        assert preview.status == 200, answer
        # Equity 1000 cash + 10 x 100 = 2000: AAA is at 50% already, BBB needs 1000 / 50 = 20.
        assert [(t["symbol"], t["side"], D(t["quantity"])) for t in answer["trades"]] == [("BBB", "BUY", D(20))]
        bad = await client.post("/v1/portfolio/rebalance/preview", headers=headers,
                                json={**body, "weights": {"CCC": 1.0}})
        assert bad.status == 400 and "prices.CCC" in (await bad.json())["detail"]
        other = await client.post("/v1/portfolio/targets", headers=headers, json={**body, "account": "ACC2"})
        assert other.status == 403
        accepted = await client.post("/v1/portfolio/targets", json=body, headers=headers)
        assert accepted.status == 202, await accepted.text()
        event_id = (await accepted.json())["event_id"]
        stored = decode((await bus.js.get_msg("SQ_TRADING", (await accepted.json())["stream_seq"])).data or b"")
        assert isinstance(stored, TargetWeightsSet) and stored.id == event_id and stored.weights["BBB"] == 0.5
    finally:
        await client.close()
