"""`sq processor binance --trade` as a process: a resting child filled across a SIGKILL, reported once, ready probes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import aiohttp
import msgspec

from events import Broker, Bus, ChildOrder, ExecutionReport
from events.broker import free_port
from events.portfolio import VenuePositionsReported
from processors.connector.credentials import CredentialStore
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.binance_userdata_standin import Account, add_routes
from tests.connectors.conftest import collect, serve

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "proc-api-key-2b", "proc-api-secret-8e"
D = Decimal


async def start(base: str, broker: Broker, data_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
    ws = base.replace("http", "ws")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "processors.connector.binance.runner", "--symbols", "NKNUSDT", "--trade",
        "--ws-url", ws, "--rest-url", base, "--ws-api-url", f"{ws}/ws-api/v3", "--nats-url", broker.url,
        "--port", str(port), "--data-dir", str(data_dir), "--log-level", "INFO", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_resting_child_filled_while_the_connector_was_killed_is_reported_once_after_restart(
        broker: Broker, bus: Bus, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
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
    child = ChildOrder(id="0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a00", ts=1, order_id="0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01",
                       child_id="0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02", account="ACC1", venue="binance",
                       symbol="NKNUSDT", side="BUY", quantity=D(100), limit_price=D("0.30"))
    port = free_port()
    outputs: list[bytes] = []
    async with serve(app) as base, aiohttp.ClientSession() as http:
        async def ready() -> bool:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        proc = await start(base, broker, tmp_path, port)
        try:
            await eventually(ready, message="/readyz with the user-data stream subscribed")
            await bus.publish(child)
            await eventually(lambda: child.child_id in venue.orders, message="placed")
            await account.fill(child.child_id, "40", commission="0.00003")
            await eventually(lambda: any(isinstance(e, ExecutionReport) and e.status == "PARTIAL" for e in seen()),
                             message="first part reported")
        finally:
            proc.send_signal(signal.SIGKILL)
            outputs.append((await proc.communicate())[0])
        await eventually(lambda: not account.sockets, message="the stream is gone")
        await account.fill(child.child_id, "60", commission="0.00004")       # while nobody listens
        proc = await start(base, broker, tmp_path, port)
        try:
            await eventually(lambda: any(isinstance(e, ExecutionReport) and e.status == "FILLED" for e in seen()),
                             message="second part recovered after the restart")
            await eventually(ready, message="ready again")
        finally:
            proc.send_signal(signal.SIGTERM)
            outputs.append((await asyncio.wait_for(proc.communicate(), 15))[0])
        assert proc.returncode == 0, outputs[-1].decode()[-2000:]
    reports = [e for e in seen() if isinstance(e, ExecutionReport)]
    assert [(r.status, r.last_quantity, r.cum_quantity, r.fee) for r in reports] == [
        ("ACK", 0, 0, 0), ("PARTIAL", D(40), D(40), D("0.00003")), ("FILLED", D(60), D(100), D("0.00004"))]
    assert venue.order_requests == 1                                       # the child was sent once
    positions = [e for e in seen() if isinstance(e, VenuePositionsReported)]
    assert positions[-1].positions == {"NKNUSDT": D(100)} == {"NKNUSDT": account.balance("NKN")}
    text = b"".join(outputs).decode() + "".join(msgspec.json.encode(e).decode() for e in seen())
    assert KEY not in text and SECRET not in text
