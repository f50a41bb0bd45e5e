"""The simulated venue: walking the book, resting fills on trades, IOC/FOK, rejects, cancels, fees, latency."""

from __future__ import annotations

import msgspec
import pytest

from events import ChildCancel, ExecutionReport, decode_for_subject, encode
from events._base import Event
from processors.venue_sim.state import SimState
from tests.cores import sim_step
from tests.router.factories import MS, NS, T0, D, book, child, delta, sim_config, trade, venue

ASKS = [("100", "10"), ("101", "10"), ("102", "10")]
BIDS = [("99", "10"), ("98", "10")]


def _venue(*events: Event, **config: object) -> tuple[SimState, list[ExecutionReport]]:
    state = SimState(sim_config(venue("sim", taker="10", maker="2", latency_ms=3), **config))
    out: list[ExecutionReport] = []
    for event in events:
        state, reports = sim_step(state, event)
        out += reports  # type: ignore[arg-type]
    return state, out


def _fills(reports: list[ExecutionReport]) -> list[tuple[str, str, D]]:
    return [(str(r.last_quantity), str(r.last_price), r.fee) for r in reports if r.last_quantity]


def test_marketable_buy_when_larger_than_the_top_then_it_walks_levels_with_exact_cum_and_leaves() -> None:
    _, reports = _venue(book(BIDS, ASKS), child("25"))
    assert [(r.status, r.cum_quantity, r.leaves_quantity) for r in reports] == [
        ("ACK", D(0), D(25)), ("PARTIAL", D(10), D(15)), ("PARTIAL", D(20), D(5)), ("FILLED", D(25), D(0))]
    assert _fills(reports) == [("10", "100", D("1.00000000")), ("10", "101", D("1.01000000")),
                               ("5", "102", D("0.51000000"))]
    assert {r.ts for r in reports} == {T0 + 3 * MS} and {r.liquidity for r in reports[1:]} == {"TAKER"}


def test_taken_liquidity_when_the_book_updates_that_level_then_it_is_available_again() -> None:
    state, first = _venue(book(BIDS, ASKS), child("15", n=0), child("10", n=1))
    assert _fills(first)[2:] == [("5", "101", D("0.50500000")), ("5", "102", D("0.51000000"))]
    state, after = sim_step(state, delta([], [("101", "10")], update_id=101))
    state, again = sim_step(state, child("10", n=2))
    assert _fills(again) == [("10", "101", D("1.01000000"))]


def test_limit_gtc_when_partly_marketable_then_the_rest_rests_and_fills_on_later_trades_by_their_size() -> None:
    state, reports = _venue(book(BIDS, ASKS), child("25", limit="101"))
    assert [r.status for r in reports] == ["ACK", "PARTIAL", "PARTIAL"] and reports[-1].leaves_quantity == D(5)
    # A trade before the order reached the venue (ts + 3 ms latency) does not fill it.
    state, early = sim_step(state, trade("100", "50", ts=T0 + 2 * MS))
    assert early == []
    state, partial = sim_step(state, trade("101", "2", ts=T0 + NS, n=1))
    state, filled = sim_step(state, trade("100.5", "9", ts=T0 + 2 * NS, n=2))
    assert [(r.status, r.last_quantity, r.last_price, r.liquidity, r.fee, r.ts) for r in partial + filled] == [
        ("PARTIAL", D(2), D(101), "MAKER", D("0.04040000"), T0 + NS),
        ("FILLED", D(3), D(101), "MAKER", D("0.06060000"), T0 + 2 * NS)]
    state, none = sim_step(state, trade("90", "100", ts=T0 + 3 * NS, n=3))
    assert none == []


def test_resting_orders_when_a_trade_reaches_several_then_price_then_time_priority_shares_its_size() -> None:
    events = [book(BIDS, ASKS), child("5", limit="99.5", n=0), child("5", limit="99.7", n=1),
              child("5", limit="99.7", n=2)]
    state, _ = _venue(*events)
    state, reports = sim_step(state, trade("99.5", "8", ts=T0 + NS))
    assert [(r.child_id, r.last_quantity) for r in reports] == [
        (events[2].child_id, D(5)), (events[3].child_id, D(3))]


def test_queue_model_through_when_a_trade_only_touches_the_limit_then_no_fill() -> None:
    state, _ = _venue(book(BIDS, ASKS), child("5", limit="99.5"), queue_model="through")
    state, touch = sim_step(state, trade("99.5", "8", ts=T0 + NS))
    state, through = sim_step(state, trade("99.4", "8", ts=T0 + NS, n=1))
    assert touch == [] and [r.status for r in through] == ["FILLED"]


def test_ioc_when_the_book_runs_out_within_the_limit_then_the_rest_is_cancelled() -> None:
    _, reports = _venue(book(BIDS, ASKS), child("25", limit="101", tif="IOC"))
    assert [(r.status, r.cum_quantity, r.leaves_quantity) for r in reports] == [
        ("ACK", D(0), D(25)), ("PARTIAL", D(10), D(15)), ("PARTIAL", D(20), D(5)), ("CANCELLED", D(20), D(0))]


def test_fok_when_the_book_cannot_fill_it_whole_then_rejected_and_nothing_trades() -> None:
    _, reports = _venue(book(BIDS, ASKS), child("25", limit="101", tif="FOK"))
    [reject] = reports
    assert reject.status == "REJECTED" and "FOK: only 20 of 25" in (reject.reason or "")
    _, whole = _venue(book(BIDS, ASKS), child("20", limit="101", tif="FOK"))
    assert [r.status for r in whole] == ["ACK", "PARTIAL", "FILLED"]


def test_sell_market_order_when_no_book_then_it_trades_in_full_at_the_last_trade_price() -> None:
    _, reports = _venue(trade("50.5", "1"), child("1000", side="SELL", ts=T0 + NS))
    assert [(r.status, r.last_quantity, r.last_price) for r in reports] == [
        ("ACK", D(0), None), ("FILLED", D(1000), D("50.5"))]


@pytest.mark.parametrize(("events", "config", "reason"), [
    ([book(BIDS, ASKS, symbol="ABC"), child("1")], {}, "unknown symbol XYZ on sim: no market data"),
    ([book(BIDS, ASKS), child("1.5")], {"lot_sizes": {"XYZ": D(1)}}, "quantity 1.5 is not a multiple of lot size 1"),
    ([book(BIDS, ASKS), child("1", limit="100.25")], {"tick_sizes": {"XYZ": D("0.1")}},
     "price 100.25 is not a multiple of tick size 0.1"),
    ([child("1")], {}, "unknown symbol"),
    ([book(BIDS, []), child("1")], {}, "no liquidity for a market order"),
])
def test_invalid_child_when_it_arrives_then_rejected_with_the_reason(events, config, reason) -> None:  # type: ignore[no-untyped-def]
    _, reports = _venue(*events, **config)
    [reject] = reports
    assert reject.status == "REJECTED" and reason in (reject.reason or "")
    assert (reject.cum_quantity, reject.leaves_quantity) == (D(0), D(0))


def test_zero_quantity_child_when_it_arrives_from_the_bus_then_the_venue_rejects_it_naming_the_quantity() -> None:
    # A child order is built (and validated) by the router, so the bus decoder does not check it again
    # (validate at the edge, once); a corrupt one still gets a REJECTED report from the venue's own check.
    raw = encode(child("1")).replace(b'"quantity":"1"', b'"quantity":"0"')
    decoded = decode_for_subject("sq.exec.child.sim.ACC1", raw)
    assert decoded.quantity == 0
    _, [reject] = _venue(book(BIDS, ASKS), decoded)
    assert reject.status == "REJECTED" and "quantity 0 must be greater than 0" in (reject.reason or "")


def test_unlisted_symbol_when_the_venue_lists_symbols_then_rejected() -> None:
    state = SimState(sim_config(venue("sim", symbols=["ABC"])))
    state, reports = sim_step(state, child("1"))
    assert reports[0].status == "REJECTED" and "it lists ABC" in (reports[0].reason or "")


def test_cancel_when_the_child_rests_then_cancelled_once_with_latency_and_later_cancels_do_nothing() -> None:
    resting = child("25", limit="99.5")
    state, _ = _venue(book(BIDS, ASKS), resting)
    request = ChildCancel(id="cx1", ts=T0 + NS, order_id="parent", child_id=resting.child_id, account="ACC1",
                          venue="sim", reason="user")
    state, reports = sim_step(state, request)
    assert [(r.status, r.cum_quantity, r.leaves_quantity, r.ts) for r in reports] == [
        ("CANCELLED", D(0), D(0), T0 + NS + 3 * MS)]
    state, again = sim_step(state, msgspec.structs.replace(request, id="cx2"))
    state, trades = sim_step(state, trade("90", "100", ts=T0 + 2 * NS))
    assert again == [] and trades == []


def test_child_for_another_venue_or_redelivered_then_ignored() -> None:
    state, first = _venue(book(BIDS, ASKS), child("5"))
    state, again = sim_step(state, child("5"))
    state, other = sim_step(state, child("5", venue="elsewhere", n=1))
    assert len(first) == 2 and again == [] and other == []
