"""Clocks of the simulated venue (one per market, moved only by its own events) and of the router (not moved by venue reports)."""

from __future__ import annotations

from processors.venue_sim.state import SimState
from tests.cores import sim_step
from tests.router.factories import (
    MS,
    NS,
    T0,
    Pipeline,
    accept,
    bar,
    book,
    child,
    intent,
    router_config,
    sim_config,
    top,
    trade,
    venue,
)

ASKS = [("100", "10")]
BIDS = [("99", "10")]


def _state() -> SimState:
    return SimState(sim_config(venue("sim", latency_ms=3)))


def test_clock_when_another_symbol_or_a_bar_is_later_then_this_market_clock_does_not_move() -> None:
    state = _state()
    for event in (book(BIDS, ASKS, ts=T0), trade("100", "1", ts=T0 + NS),
                  trade("5", "1", ts=T0 + 600 * NS, symbol="OTHER"), bar(T0 + 900 * NS, "10")):
        state, _ = sim_step(state, event)
    assert state.clock("mkt", "XYZ") == T0 + NS
    assert state.clock("mkt", "OTHER") == T0 + 600 * NS
    assert state.clock("elsewhere", "XYZ") == 0


def test_fill_when_another_market_ran_ahead_then_it_is_stamped_at_the_order_arrival() -> None:
    state = _state()
    for event in (book(BIDS, ASKS, ts=T0), trade("5", "1", ts=T0 + 600 * NS, symbol="OTHER")):
        state, _ = sim_step(state, event)
    state, reports = sim_step(state, child("2", ts=T0 + 2 * NS))
    assert [r.status for r in reports] == ["ACK", "FILLED"]
    assert {r.ts for r in reports} == {T0 + 2 * NS + 3 * MS}


def test_fill_when_the_book_it_takes_is_newer_than_the_order_then_it_is_not_stamped_before_that_book() -> None:
    state = _state()
    state, _ = sim_step(state, book(BIDS, ASKS, ts=T0 + 5 * NS))
    state, reports = sim_step(state, child("2", ts=T0 + NS))
    assert [r.status for r in reports] == ["ACK", "FILLED"]
    assert {r.ts for r in reports} == {T0 + 5 * NS}


def test_router_when_a_venue_report_is_stamped_with_latency_then_the_next_child_is_not_stamped_after_it() -> None:
    # The report of the first order is stamped 15 ms after it (the venue's latency); the second order,
    # accepted 1 ms after the first, must be sent at its own decision time, not at the report's.
    pipeline = Pipeline.make(router_config(venue("sim", latency_ms=15)), sim_config(venue("sim", latency_ms=15)))
    first, second = intent("a", "1"), intent("b", "1", ts=T0 + MS)
    pipeline.feed(book(BIDS, ASKS, ts=T0 - NS), top("99", "100", ts=T0 - NS), first, accept(first))
    assert {r.ts for r in pipeline.reports} == {T0 + 15 * MS}
    assert pipeline.router.now == T0
    pipeline.feed(second, accept(second))
    assert [c.ts for c in pipeline.children] == [T0, T0 + MS]
    assert {r.ts for r in pipeline.reports if r.order_id == second.id} == {T0 + 16 * MS}
