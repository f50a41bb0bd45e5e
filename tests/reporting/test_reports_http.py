"""The gateway's report routes over a real WAL folded by its projections: metrics, tear sheet, TCA, blotter, daily."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.market import Trade
from events.subjects import STREAM_MD
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig
from gateway.users import User
from processors.aggregator.tape import summarise
from projections.service import Projections
from tests.reporting._wal import DATE, DAY, T0, record, write_history


@dataclass
class Served:
    """A gateway client and a token per user: alice trades ACC1, vic views ACC2, rita is risk."""

    client: TestClient  # type: ignore[type-arg]
    tokens: dict[str, str]

    async def get(self, user: str, path: str, **query: str):  # type: ignore[no-untyped-def]
        return await self.client.get(path, params=query, headers={"Authorization": f"Bearer {self.tokens[user]}"})


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    write_history(tmp_path)
    # Marks on the next two days (the aggregator's summaries of these trades), so ACC1 has three daily P&L closes.
    record(tmp_path / "wal" / STREAM_MD.name, [
        summarise(Trade(id=f"m{i}", ts=T0 + i * DAY, venue="BINANCE", symbol="XYZ", price=D(p), quantity=D(1)))
        for i, p in ((1, "10.30"), (2, "9.90"))])
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints")
    projections.load_and_catch_up()
    gateway = Gateway.open(GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False), None, projections)
    now = int(time.time())
    users = {"alice": User("alice", ("trader",), ("ACC1",)), "vic": User("vic", ("viewer",), ("ACC2",)),
             "rita": User("rita", ("risk",), ())}
    tokens = {name: gateway.tokens.issue(user, now)[0] for name, user in users.items()}
    client = TestClient(TestServer(create_app(gateway)))
    await client.start_server()
    yield Served(client, tokens)
    await client.close()


async def test_metrics_route_answers_the_metrics_of_the_accounts_daily_returns_on_capital(served):
    response = await served.get("alice", "/v1/reports/metrics", capital="1000")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["account"] == "ACC1" and body["days"] == 3 and body["capital"] == 1000
    # Day closes: 20 XYZ bought at 10.02 (fees 0.35085), marked 10.02, 10.30, 9.90.
    closes = [0, -0.35085, 20 * 0.28 - 0.35085, -20 * 0.12 - 0.35085]
    equity = [1000 + c for c in closes]
    expected = equity[-1] / equity[0] - 1
    assert body["metrics"]["cumulative_return"] == pytest.approx(expected, rel=1e-12)
    assert body["metrics"]["start"] == DATE


async def test_metrics_route_refuses_a_missing_capital_another_accounts_pnl_and_an_account_without_pnl(served):
    missing = await served.get("alice", "/v1/reports/metrics")
    assert missing.status == 400 and "capital is required" in (await missing.json())["detail"]
    other = await served.get("alice", "/v1/reports/metrics", account="ACC2", capital="1000")
    assert other.status == 403
    empty = await served.get("vic", "/v1/reports/metrics", capital="1000")
    assert empty.status == 404 and "ACC2 has no P&L" in (await empty.json())["detail"]
    unnamed = await served.get("rita", "/v1/reports/metrics", capital="1000")
    assert unnamed.status == 400 and "account is required" in (await unnamed.json())["detail"]


async def test_tearsheet_route_serves_a_self_contained_html_page(served):
    response = await served.get("rita", "/v1/reports/tearsheet", account="ACC1", capital="1000")
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 5 and "Tear sheet ACC1" in page
    assert "src=" not in page and 'href="http' not in page  # nothing fetched: it opens offline


async def test_tca_and_blotter_routes_show_only_the_callers_accounts(served):
    tca = await (await served.get("alice", "/v1/reports/tca")).json()
    assert [(r["algo"], r["venue"]) for r in tca["tca"]] == [("TWAP", "ALL"), ("TWAP", "SIM_A"), ("TWAP", "SIM_B")]
    assert tca["tca"][0]["avg_shortfall_bps"] == "20"
    everyone = await (await served.get("rita", "/v1/reports/tca", date=DATE)).json()
    assert {r["algo"] for r in everyone["tca"]} == {"TWAP", "LIMIT"} and everyone["date"] == DATE
    viewer = await (await served.get("vic", "/v1/reports/blotter")).json()
    assert viewer["fills"] == []
    fills = await (await served.get("rita", "/v1/reports/blotter", account="ACC1", limit="1")).json()
    assert [(f["venue"], f["price"], f["fee"], f["liquidity"]) for f in fills["fills"]] == [
        ("SIM_B", "10.03", "0.25075", "TAKER")]
    bad = await served.get("rita", "/v1/reports/tca", date="yesterday")
    assert bad.status == 400


async def test_daily_route_reports_each_visible_account_for_a_utc_day(served):
    response = await served.get("alice", "/v1/reports/daily", date=DATE)
    assert response.status == 200
    body = await response.json()
    assert [a["account"] for a in body["accounts"]] == ["ACC1"]
    acc1 = body["accounts"][0]
    assert acc1["fills"] == 2 and acc1["turnover"] == "200.4" and acc1["unrealized_pnl"] == "1.6"
    next_day = await (await served.get("alice", "/v1/reports/daily", date="2023-12-10")).json()
    assert next_day["accounts"][0]["unrealized_pnl"] == "5.6" and next_day["accounts"][0]["fills"] == 0
    assert (await served.get("alice", "/v1/reports/daily")).status == 400
