"""End to end over a real broker: intent → risk → router → simulated venue → positions, TCA and projections."""

from __future__ import annotations

import time
from decimal import Decimal as D

from events import (
    KillSwitchEngaged,
    OrderIntent,
    ParentOrderCompleted,
    RiskDecision,
    TwapAlgo,
    decode,
    intent_id_for,
    new_event_id,
)
from tests.conftest import eventually
from tests.pipeline.conftest import Stack, publish_market


async def _market(stack: Stack, now: int) -> None:
    await publish_market(stack.bus, now, stack.hosts)


async def _trading_events(stack: Stack) -> list[object]:
    info = await stack.bus.js.stream_info("SQ_TRADING")
    return [decode((await stack.bus.js.get_msg("SQ_TRADING", seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)]


async def test_twap_intent_is_accepted_sliced_filled_and_shows_in_positions_and_tca(stack: Stack) -> None:
    now = time.time_ns()
    await _market(stack, now)
    intent = OrderIntent(id=intent_id_for("ACC1", "twap-1"), ts=now, account="ACC1", client_order_id="twap-1",
                         symbol="XYZ", side="BUY", quantity=D("20"), limit_price=D("10.50"),
                         algo=TwapAlgo(duration_s=0.4, slices=2))
    await stack.bus.publish(intent)

    def filled() -> bool:
        order = stack.projections.state.orders.get(intent.id)
        return order is not None and order.status == "FILLED"

    await eventually(filled, timeout=30, message="TWAP order filled in the projections")
    events = await _trading_events(stack)
    decisions = [e for e in events if isinstance(e, RiskDecision)]
    assert len(decisions) == 1 and decisions[0].accepted and decisions[0].order_id == intent.id
    children = [c for c in stack.projections.state.children.values() if c.order_id == intent.id]
    assert len(children) == 2 and sum((c.quantity for c in children), D(0)) == D("20")
    assert all(c.status == "FILLED" for c in children)
    position = stack.projections.state.positions[("ACC1", "XYZ")]
    assert position.quantity == D("20") and position.avg_price == D("10.01")
    order = stack.projections.state.orders[intent.id]
    assert order.avg_price == D("10.01") and order.fees == D("20") * D("10.01") * D("0.001")

    async def tca() -> ParentOrderCompleted | None:
        found = [e for e in await _trading_events(stack) if isinstance(e, ParentOrderCompleted)]
        return found[0] if found else None

    await eventually(tca, timeout=10, message="TCA published")
    completed = await tca()
    assert completed is not None and completed.status == "FILLED" and completed.filled_quantity == D("20")
    assert completed.arrival_price == D("10.00") and completed.average_price == D("10.01")
    assert completed.shortfall_bps == D("10")  # (10.01 - 10.00) / 10.00 in bps, a BUY paying up


async def test_rejected_intent_names_every_failing_check(stack: Stack) -> None:
    now = time.time_ns()
    await _market(stack, now)
    intent = OrderIntent(id=intent_id_for("ACC1", "too-big"), ts=now, account="ACC1", client_order_id="too-big",
                         symbol="XYZ", side="BUY", quantity=D("2000000"), limit_price=D("10.00"))
    await stack.bus.publish(intent)

    def rejected() -> bool:
        order = stack.projections.state.orders.get(intent.id)
        return order is not None and order.status == "REJECTED"

    await eventually(rejected, timeout=20, message="order rejected")
    decision = next(d for d in stack.projections.state.decisions if d.order_id == intent.id)
    assert not decision.accepted
    assert set(decision.failed_checks.split(",")) >= {"max_order_quantity", "max_order_notional"}
    assert "2000000" in decision.reasons
    assert not [c for c in stack.projections.state.children.values() if c.order_id == intent.id]


async def test_kill_switch_stops_a_working_twap_and_cancels_its_children(stack: Stack) -> None:
    now = time.time_ns()
    await _market(stack, now)
    # Resting GTC slices below the market: children work at the venue without filling.
    intent = OrderIntent(id=intent_id_for("ACC1", "twap-kill"), ts=now, account="ACC1", client_order_id="twap-kill",
                         symbol="XYZ", side="BUY", quantity=D("40"), limit_price=D("9.00"),
                         algo=TwapAlgo(duration_s=30, slices=10))
    await stack.bus.publish(intent)

    def working_children() -> list[object]:
        return [c for c in stack.projections.state.children.values()
                if c.order_id == intent.id and c.status in ("NEW", "ACK")]

    await eventually(lambda: len(working_children()) >= 1, timeout=20, message="a child is working")
    sliced_before = stack.projections.state.orders[intent.id].children
    await stack.bus.publish(KillSwitchEngaged(id=new_event_id(), ts=time.time_ns(), account="ACC1",
                                              actor="risk-officer", reason="drill"))
    await eventually(lambda: not working_children(), timeout=20, message="every working child cancelled")
    await eventually(lambda: stack.projections.state.orders[intent.id].status == "CANCELLED", timeout=20,
                     message="parent cancelled")
    children = [c for c in stack.projections.state.children.values() if c.order_id == intent.id]
    assert children and all(c.status == "CANCELLED" for c in children)
    # No further slices after the kill switch, and a new intent is refused.
    assert stack.projections.state.orders[intent.id].children == sliced_before
    refused = OrderIntent(id=intent_id_for("ACC1", "after-kill"), ts=time.time_ns(), account="ACC1",
                          client_order_id="after-kill", symbol="XYZ", side="BUY", quantity=D("1"),
                          limit_price=D("10"))
    await stack.bus.publish(refused)
    await eventually(lambda: stack.projections.state.orders.get(refused.id) is not None
                     and stack.projections.state.orders[refused.id].status == "REJECTED", timeout=20,
                     message="intent after the kill switch rejected")
    decision = next(d for d in stack.projections.state.decisions if d.order_id == refused.id)
    assert "kill_switch" in decision.failed_checks
