"""`sq up --venue binance` end to end: the whole stack with the live runner against the stand-in, intent to FILLED."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from events import Broker, Bus, ExecutionReport, OrderIntent, RiskDecision
from events.broker import free_port
from events.ids import intent_id_for
from events.trading import LimitAlgo, ParentOrderCompleted
from processors.connectors.credentials import CredentialStore
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.binance_userdata_standin import Account, add_routes
from tests.connectors.conftest import collect, serve

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "up-api-key-51", "up-api-secret-c7"
D = Decimal


async def test_sq_up_with_binance_runs_the_live_runner_and_a_resting_order_fills_in_two_parts(
        broker: Broker, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)
    store = CredentialStore(tmp_path)
    store.set("binance", "api_key", KEY)
    store.set("binance", "api_secret", SECRET)
    venue = BinanceStandIn(KEY, SECRET)
    account = Account(venue, {"NKNUSDT": ("NKN", "USDT")},
                      balances={"USDT": [D("1000"), D(0)], "NKN": [D(0), D(0)], "BNB": [D("1"), D(0)]})
    app = make_app(venue)
    add_routes(app, account)
    seen = await collect(bus)
    async with serve(app) as base:
        ws = base.replace("http", "ws")
        env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "up", "--venue", "binance", "--venue-markets", "NKNUSDT",
            "--venue-option", f"ws-url={ws}", "--venue-option", f"rest-url={base}",
            "--venue-option", f"ws-api-url={ws}/ws-api/v3", "--data-dir", str(tmp_path),
            "--http-port", str(free_port()), "--nats-url", broker.url, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await eventually(lambda: account.subscribes >= 1 and venue.finished.is_set(), timeout=120,
                             message="the live runner subscribed and read the market")
            bid = max(venue.books["NKNUSDT"].bids)                  # rests: below the best ask, inside the collar
            intent = OrderIntent(id=intent_id_for("ACC1", "up-live-1"), ts=0, account="ACC1",
                                 client_order_id="up-live-1", symbol="NKNUSDT", venue="binance", side="BUY",
                                 quantity=D(100), limit_price=bid, algo=LimitAlgo())
            await bus.publish(intent)
            await eventually(lambda: any(isinstance(e, RiskDecision) for e in seen()), timeout=60,
                             message="risk decided")
            [decision] = [e for e in seen() if isinstance(e, RiskDecision)]
            assert decision.accepted, decision.failures
            await eventually(lambda: len(venue.orders) == 1, timeout=60, message="the child reached Binance")
            [child_id] = venue.orders
            await account.fill(child_id, "40", commission="0.00003")
            await account.fill(child_id, "60", commission="0.00004")
            await eventually(lambda: any(isinstance(e, ParentOrderCompleted) for e in seen()), timeout=60,
                             message="parent completed")
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, output.decode()[-3000:]
    [done] = [e for e in seen() if isinstance(e, ParentOrderCompleted)]
    assert done.status == "FILLED" and done.filled_quantity == 100 and done.fees == D("0.00007")
    fills = [e for e in seen() if isinstance(e, ExecutionReport) and e.status in ("PARTIAL", "FILLED")]
    assert [(f.last_quantity, f.cum_quantity) for f in fills] == [(D(40), D(40)), (D(60), D(100))]
    assert (tmp_path / "logs" / "binance.log").exists() and not (tmp_path / "logs" / "venue-sim.log").exists()
    logs = output.decode() + "".join(path.read_text() for path in (tmp_path / "logs").iterdir())
    assert '"subscribed"' in logs or "user-data stream subscribed" in logs
    assert KEY not in logs and SECRET not in logs
