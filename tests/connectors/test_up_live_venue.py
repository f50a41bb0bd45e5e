"""`sq up --venue binance|kite` end to end: the whole stack with the live runner against a stand-in, intent to FILLED."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pyotp
import pytest

from events import Broker, Bus, ExecutionReport, OrderIntent, RiskDecision, Trade
from events.broker import free_port
from events.codec import AnyEvent
from events.ids import intent_id_for
from events.trading import LimitAlgo, ParentOrderCompleted
from processors.connector.credentials import CredentialStore
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.binance_userdata_standin import Account, add_routes
from tests.connectors.conftest import collect, serve
from tests.connectors.kite_standin import KiteStandIn, message, pack_full
from tests.connectors.kite_standin import make_app as make_kite_app

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "up-api-key-51", "up-api-secret-c7"
D = Decimal


async def accepted_intent(bus: Bus, seen: Callable[[], list[AnyEvent]], make: Callable[[int], OrderIntent],
                          *, nudge: Callable[[int], Awaitable[None]] | None = None) -> OrderIntent:
    """Publish intents until risk accepts one: the first may beat the market data to the risk process."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    attempt = 0
    while True:
        intent = make(attempt)
        await bus.publish(intent)
        def decisions(order_id: str = intent.id) -> list[RiskDecision]:
            return [e for e in seen() if isinstance(e, RiskDecision) and e.order_id == order_id]

        await eventually(lambda: bool(decisions()), timeout=180, message="risk decided")
        [decision] = decisions()
        if decision.accepted:
            return intent
        assert all("no reference price" in f.reason for f in decision.failures), decision.failures
        assert loop.time() < deadline, "risk never saw a reference price"
        attempt += 1
        if nudge is not None:
            await nudge(attempt)


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
            await eventually(lambda: account.subscribes >= 1 and venue.finished.is_set(), timeout=180,
                             message="the live runner subscribed and read the market")
            bid = max(venue.books["NKNUSDT"].bids)                  # rests: below the best ask, inside the collar
            await accepted_intent(bus, seen, lambda n: OrderIntent(
                id=intent_id_for("ACC1", f"up-live-{n}"), ts=0, account="ACC1", client_order_id=f"up-live-{n}",
                symbol="NKNUSDT", venue="binance", side="BUY", quantity=D(100), limit_price=bid, algo=LimitAlgo()))
            await eventually(lambda: len(venue.orders) == 1, timeout=180, message="the child reached Binance")
            [child_id] = venue.orders
            await account.fill(child_id, "40", commission="0.00003")
            await account.fill(child_id, "60", commission="0.00004")
            await eventually(lambda: any(isinstance(e, ParentOrderCompleted) for e in seen()), timeout=180,
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


async def test_sq_up_with_kite_logs_in_streams_and_fills_an_order_through_the_ticker(
        broker: Broker, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)
    seed = pyotp.random_base32()
    creds = {"user_id": "UP1234", "password": "up-kite-pw-3", "totp_seed": seed, "api_key": "upkitekey",
             "api_secret": "up-kite-secret-9"}
    store = CredentialStore(tmp_path)
    for name, value in creds.items():
        store.set("kite", name, value)
    venue = KiteStandIn(creds["user_id"], creds["password"], seed, creds["api_key"], creds["api_secret"])
    seen = await collect(bus)
    async with serve(make_kite_app(venue)) as base:
        env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
        options = [f"login-url={base}", f"connect-url={base}", f"api-url={base}",
                   f"ws-url={base.replace('http', 'ws')}/ws", f"postback-port={free_port()}"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "up", "--venue", "kite", "--venue-markets", "NSE:INFY",
            *[arg for option in options for arg in ("--venue-option", option)], "--data-dir", str(tmp_path),
            "--http-port", str(free_port()), "--nats-url", broker.url, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await eventually(lambda: {"a": "subscribe", "v": [408065]} in venue.subscriptions, timeout=180,
                             message="the kite runner logged in and subscribed")
            await venue.push(message(pack_full(408065, ltp=157315, last_qty=5, volume=1000, close=156780,
                                               last_trade_time=1_764_820_000, exchange_ts=1_764_820_001,
                                               bids=[(10, 157310, 2)], asks=[(7, 157320, 1)])))
            await eventually(lambda: any(isinstance(e, Trade) and e.venue == "kite" for e in seen()), timeout=180,
                             message="a kite trade on the bus")
            async def tick(n: int) -> None:  # the market moves on: another trade for risk to price against
                await venue.push(message(pack_full(408065, ltp=157315, last_qty=5, volume=1000 + 5 * n,
                                                   close=156780, last_trade_time=1_764_820_000 + n,
                                                   exchange_ts=1_764_820_001 + n, bids=[(10, 157310, 2)],
                                                   asks=[(7, 157320, 1)])))

            await accepted_intent(bus, seen, lambda n: OrderIntent(
                id=intent_id_for("ACC1", f"up-kite-{n}"), ts=0, account="ACC1", client_order_id=f"up-kite-{n}",
                symbol="INFY", venue="kite", side="BUY", quantity=D(10), limit_price=D("1573.10"),
                algo=LimitAlgo()), nudge=tick)
            await eventually(lambda: len(venue.orders) == 1, timeout=180, message="the child reached Kite")
            [order_id] = venue.orders
            update = venue.order_update(order_id, status="COMPLETE", filled=10, average="1573.1")
            await venue.push({"type": "order", "data": update})
            await eventually(lambda: any(isinstance(e, ParentOrderCompleted) for e in seen()), timeout=180,
                             message="parent completed")
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, output.decode()[-3000:]
    [done] = [e for e in seen() if isinstance(e, ParentOrderCompleted)]
    assert done.status == "FILLED" and done.filled_quantity == 10 and done.average_price == D("1573.1")
    logs = output.decode() + "".join(path.read_text() for path in (tmp_path / "logs").iterdir())
    assert (tmp_path / "logs" / "kite.log").exists() and not (tmp_path / "logs" / "venue-sim.log").exists()
    for secret in (creds["password"], creds["api_secret"], seed, *venue.access_tokens):
        assert secret not in logs
