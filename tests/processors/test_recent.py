"""Bounded duplicate memory: `Recent` forgets by event time, and the processors that use it stay bounded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import OrderIntent, ParentOrderCompleted, RiskDecision
from processors.portfolio.core import PortfolioState
from processors.portfolio.core import evolve as portfolio_evolve
from processors.recent import Recent
from processors.router.state import RouterState
from processors.venue_sim.state import SimState
from tests.cores import risk_step, router_step, sim_step
from tests.risk import factories as rf
from tests.router import factories as tf

NS = 1_000_000_000


def accept_risk(order: OrderIntent) -> RiskDecision:
    return RiskDecision(id=f"decision-{order.id}", ts=order.ts, order_id=order.id, account=order.account,
                        symbol=order.symbol, accepted=True)


@given(window=st.integers(1, 1_000), slices=st.integers(1, 8),
       steps=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20)), min_size=1, max_size=200))
def test_recent_when_time_moves_then_remembers_at_least_the_window_and_less_than_a_slice_more(
        window: int, slices: int, steps: list[tuple[int, int]]) -> None:
    recent: Recent[int, int] = Recent(window, slices)
    added: dict[int, int] = {}            # key -> newest time it was set at
    now = 0
    for gap, key in steps:
        now += gap
        recent.set(key, now, now)
        added[key] = now
        for other, at in added.items():
            age = now - at
            if age < window:
                assert recent.get(other) == at, (other, at, now)
            elif age >= window + recent.slice_ns:
                assert other not in recent, (other, at, now)
    assert len(recent) == len(list(recent)) <= len(added)


def test_recent_when_an_event_is_late_then_it_is_kept_by_the_newest_slice_and_pop_forgets() -> None:
    recent: Recent[str, int] = Recent(100, 4)
    recent.set("new", 1, 1_000)
    recent.set("late", 2, 10)            # older than what was already seen
    recent.advance(1_099)
    assert recent.get("late") == 2 and "new" in recent
    assert recent.pop("late") == 2 and "late" not in recent and recent.pop("late") is None
    recent.advance(1_000 + 100 + recent.slice_ns)
    assert len(recent) == 0


def test_recent_when_window_or_slices_not_positive_then_refused() -> None:
    with pytest.raises(ValueError, match="window_ns"):
        Recent(0)
    with pytest.raises(ValueError, match="slices"):
        Recent(10, 0)


def test_risk_when_orders_flow_for_hours_then_duplicate_memory_stays_within_its_windows() -> None:
    state = rf.state_with(dedupe_window_s=60)
    every = 10 * NS
    for k in range(720):                                          # two hours, one order every 10 s
        order = rf.intent(ts=rf.T0 + k * every, client_order_id=f"c{k % 400}", limit_price=None)
        (decision,) = risk_step(state, order)[1]
        assert isinstance(decision, RiskDecision) and decision.accepted, decision.failures
        sent = rf.child(order)
        risk_step(state, sent)
        risk_step(state, rf.report(sent, "FILLED", "1", "100", cum="1", ts=order.ts))
    coids = state.accounts["ACC1"].coids
    # Client order ids are remembered for the 60 s dedupe window (plus a slice), decided intents
    # and finished children for the redelivery window (5 minutes plus a slice): not for the whole run.
    assert len(coids) <= 60 // 10 + 2
    assert len(state.recent) <= 300 // 10 + 8 and len(state.book.done_children) <= 300 // 10 + 8
    assert state.book.open_orders("ACC1") == 0 and not state.book.children
    assert state.book.position("ACC1", "BTCUSDT").quantity == Decimal(720)
    # Inside the window a reused client order id is refused; a redelivered intent is not decided again.
    reused = rf.intent(ts=order.ts + NS, client_order_id=order.client_order_id, limit_price=None)
    assert [f.check for f in risk_step(state, reused)[1][0].failures] == ["duplicate_client_order_id"]
    assert risk_step(state, order)[1] == []


def test_risk_when_an_intent_comes_back_after_the_redelivery_window_then_its_client_id_still_knows_it() -> None:
    state = rf.state_with()                                        # the default one-day dedupe window
    first = rf.intent(ts=rf.T0, client_order_id="keep-me", limit_price=None)
    assert risk_step(state, first)[1][0].accepted
    for k in range(1, 121):                                        # 20 minutes of other orders
        risk_step(state, rf.intent(ts=rf.T0 + k * 10 * NS, client_order_id=f"other-{k}", limit_price=None))
    assert first.id not in state.recent                            # the short memory has let it go
    assert risk_step(state, first)[1] == []                       # ... the client id still knows it
    reuse = rf.intent(ts=rf.T0 + 1300 * NS, client_order_id="keep-me", limit_price=None)
    assert [f.check for f in risk_step(state, reuse)[1][0].failures] == ["duplicate_client_order_id"]


def test_portfolio_when_orders_complete_for_hours_then_tags_and_seen_fills_are_bounded() -> None:
    state = PortfolioState()
    for k in range(720):                                          # two hours, one order every 10 s
        order = rf.intent(ts=rf.T0 + k * 10 * NS, client_order_id=f"p{k}", limit_price=None, strategy="momentum")
        sent = rf.child(order)
        fill = rf.report(sent, "FILLED", "1", "100", cum="1", ts=order.ts)
        done = ParentOrderCompleted(id=f"done-{k}", ts=order.ts, order_id=order.id, account=order.account,
                                    client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
                                    algo="MARKET", status="FILLED", quantity=Decimal(1), filled_quantity=Decimal(1),
                                    children=1, start_ts=order.ts, end_ts=order.ts)
        for event in (order, accept_risk(order), sent, fill, fill, done):      # the fill comes twice
            portfolio_evolve(state, event)
    attribution = state.attribution["ACC1"]
    assert not attribution.strategy_of                            # every order ended: no tag kept
    assert len(state.reports_seen) <= 300 // 10 + 8 and len(attribution._seen_fills) <= 300 // 10 + 8
    assert attribution.by_strategy[("momentum", "BTCUSDT")].quantity == Decimal(720)   # each fill once


def test_sim_when_children_finish_for_hours_then_it_holds_only_recent_ids_and_fills_each_copy_once() -> None:
    state = SimState(tf.sim_config())
    state, _ = sim_step(state, tf.book([("99", "1000000")], [("101", "1000000")]))
    for k in range(240):                                          # four hours, a market child a minute
        sent = tf.child("1", ts=tf.T0 + k * 60 * NS, n=k)
        state, reports = sim_step(state, sent)
        assert reports[-1].status == "FILLED"
        state, again = sim_step(state, sent)                 # redelivered while remembered
        assert again == []
    assert state.orders == {}
    assert len(state.finished) <= 5 + 2
    # Past the window the id is forgotten: the price of bounded memory, which JetStream's
    # duplicate window and the consumer's bounded redeliveries make safe (processors.recent).
    state, late = sim_step(state, tf.child("1", ts=tf.T0, n=0))
    assert late and late[-1].status == "FILLED"


def test_router_when_orders_close_for_hours_then_closed_ids_are_bounded() -> None:
    state = RouterState(tf.router_config())
    for k in range(240):
        order = tf.intent(f"c{k}", "1", ts=tf.T0 + k * 60 * NS)
        state, _ = router_step(state, order)
        state, out = router_step(state, tf.accept(order, accepted=False))
        state, again = router_step(state, order)             # redelivered intent after the rejection
        assert again == [] and order.id not in state.intents
    assert len(state.closed) <= 5 + 2 and not state.parents and not state.by_client
