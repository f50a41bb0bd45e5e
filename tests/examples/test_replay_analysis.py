"""examples/replay_analysis.py over `sq store export` of a WAL the order path wrote."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal as D

from events import MarketAlgo, OrderIntent, intent_id_for
from events._base import Side
from store import WalWriter
from store.follow import last_recorded
from tests.conftest import eventually
from tests.examples.conftest import EXAMPLES, Stack, run
from tests.pipeline.conftest import STREAMS, publish_market

ORDERS: list[tuple[Side, str]] = [("BUY", "5"), ("BUY", "3"), ("SELL", "2"), ("BUY", "1")]


async def test_replay_analysis_agrees_with_the_projections_on_fills_vwap_and_pnl(stack: Stack) -> None:
    now = time.time_ns()
    await publish_market(stack.bus, now, stack.hosts)
    ids = []
    for index, (side, quantity) in enumerate(ORDERS):
        coid = f"analysis-{index}"
        ids.append(intent_id_for("ACC1", coid))
        await stack.bus.publish(OrderIntent(id=ids[-1], ts=now + index, account="ACC1", client_order_id=coid,
                                            symbol="XYZ", side=side, quantity=D(quantity), algo=MarketAlgo()))
    orders = stack.projections.state.orders
    await eventually(lambda: all(i in orders and orders[i].status == "FILLED" for i in ids), timeout=20,
                     message="every order filled")
    state = stack.projections.state
    position = state.positions[("ACC1", "XYZ")]

    async def recorded_all() -> bool:
        held = {stream: (await stack.bus.js.stream_info(stream)).state.last_seq for stream in STREAMS}
        done = last_recorded(stack.data_dir / "wal", STREAMS)
        return all(done[stream] >= held[stream] for stream in STREAMS)

    # The projections can see the last fill before the recorder has written it: wait for the WAL.
    await eventually(recorded_all, message="the WAL holds every event the projections saw")
    # Only sealed segments are exported: stop the recorder and seal each stream's open segment.
    stack.stop.set()
    await asyncio.wait_for(asyncio.gather(*stack.tasks, return_exceptions=True), 20)
    for stream in STREAMS:
        with WalWriter.open(stack.data_dir / "wal" / stream) as writer:
            writer.seal()
    export_dir = stack.data_dir / "export"
    await run(sys.executable, "-m", "gateway.cli", "store", "export", stack.data_dir / "wal", export_dir)

    result = json.loads(await run(sys.executable, EXAMPLES / "replay_analysis.py", export_dir, "--json"))
    counts = {row["type"]: row["events"] for row in result["events"]}
    assert counts["OrderIntent"] == len(ORDERS) and counts["Trade"] == 1
    [xyz] = result["per_symbol"]
    fills = [f for f in state.fills if f.symbol == "XYZ"]
    assert xyz["fills"] == len(fills) and xyz["orders"] == len(ORDERS)
    assert D(xyz["bought"]) == D("9") and D(xyz["sold"]) == D("2")
    notional = sum((f.quantity * f.price for f in fills), D(0))
    assert D(xyz["notional"]) == notional and D(xyz["fees"]) == sum((f.fee for f in fills), D(0))
    assert abs(D(str(xyz["vwap"])) - notional / D(11)) < D("1e-8")
    [pnl] = result["pnl"]
    assert (pnl["account"], D(pnl["position"]), D(pnl["mark"])) == ("ACC1", position.quantity, D("10.00"))
    assert D(pnl["pnl"]) == position.net_pnl(D("10.00"))

    tables = await run(sys.executable, EXAMPLES / "replay_analysis.py", export_dir)
    assert "== per_symbol" in tables and "XYZ" in tables
