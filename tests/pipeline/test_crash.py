"""Crash safety: SIGKILL each processor process in turn mid-run; the outcome equals an uninterrupted run's."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path

from events import Bus, MarketAlgo, OrderIntent, TwapAlgo, intent_id_for
from projections.service import Projections
from projections.state import ProjectionState
from tests.conftest import eventually
from tests.pipeline.conftest import ProcessStack, publish_market

ORDERS = 60


def _intents(now: int) -> list[OrderIntent]:
    intents = []
    for i in range(ORDERS):
        algo = TwapAlgo(duration_s=0.5, slices=2) if i % 10 == 0 else MarketAlgo()
        intents.append(OrderIntent(id=intent_id_for("ACC1", f"crash-{i}"), ts=now + i, account="ACC1",
                                   client_order_id=f"crash-{i}", symbol="XYZ", side="BUY" if i % 3 else "SELL",
                                   quantity=D(2 + i % 5), limit_price=D("10.50") if i % 3 else D("9.50"),
                                   algo=algo))
    return intents


def _expected_position(intents: list[OrderIntent]) -> D:
    return sum((i.quantity if i.side == "BUY" else -i.quantity for i in intents), D(0))


def _outcome(state: ProjectionState) -> dict[str, tuple[str, D]]:
    """Status and filled quantity per order, for the failure message."""
    return {order_id: (row.status, row.filled_quantity) for order_id, row in state.orders.items()}


async def test_sigkill_each_processor_in_turn_leaves_no_duplicate_fill_and_the_same_outcome(
        bus: Bus, processes: ProcessStack, tmp_path: Path) -> None:
    for name in ("recorder", "risk", "router", "venue-sim"):
        processes.start(name)
    try:
        await asyncio.sleep(1.0)  # let each process subscribe before the market moves
        now = time.time_ns()
        await publish_market(bus, now)
        intents = _intents(now)
        for index, intent in enumerate(intents):
            await bus.publish(intent)
            if index % 12 == 6:
                # Kill one processor in turn while intents are in flight, then start it again.
                name = ("recorder", "risk", "router", "venue-sim")[(index // 12) % 4]
                processes.kill(name)
                processes.start(name)
            await asyncio.sleep(0.02)

        projections = Projections(tmp_path / "wal", tmp_path / "projections")

        def settled() -> bool:
            projections.state = ProjectionState()
            projections.load_and_catch_up()
            orders = projections.state.orders
            return len(orders) == ORDERS and all(o.status in ("FILLED", "REJECTED") for o in orders.values())

        await eventually(lambda: _in_thread(settled), timeout=180, interval=0.5, message="every order settled")
    finally:
        processes.stop_all()

    state = projections.state
    assert all(row.status == "FILLED" for row in state.orders.values()), _outcome(state)
    reports = [row for row in state.audit if row.event_type == "ExecutionReport"]
    report_ids = [row.event_id for row in reports]
    assert len(report_ids) == len(set(report_ids)), "an execution report was recorded twice"
    assert len(state.fills) == len({f.report_id for f in state.fills})
    decisions = [row for row in state.audit if row.event_type == "RiskDecision"]
    assert len(decisions) == ORDERS, "each intent decided exactly once"
    # What an uninterrupted run gives on this static market: every order filled in full at the touch.
    for order in state.orders.values():
        assert order.filled_quantity == order.quantity
        assert order.avg_price == (D("10.01") if order.side == "BUY" else D("9.99"))
    position = state.positions[("ACC1", "XYZ")]
    assert position.quantity == _expected_position(_intents(0))


async def _in_thread(check) -> bool:  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(check)
