"""Router scenarios per algorithm: slice counts and times by event time, exact quantities, limits."""

from __future__ import annotations

from decimal import Decimal

from events import LimitAlgo, MarketAlgo, PovAlgo, TradeSummary, TwapAlgo, VwapAlgo
from processors.router.schedule import slice_times, split
from tests.router.factories import (
    NS,
    T0,
    D,
    Pipeline,
    accept,
    bar,
    book,
    intent,
    router_config,
    timers,
    trade,
    venue,
)

DEEP_BOOK = book([("9.99", "100000")], [("10.01", "100000")])


def test_market_intent_when_accepted_then_one_ioc_child_now_for_the_whole_quantity() -> None:
    order = intent("m1", "25", algo=MarketAlgo())
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order))
    [child] = run.children
    assert (child.quantity, child.limit_price, child.time_in_force, child.ts) == (D(25), None, "IOC", T0)
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.average_price) == ("FILLED", D(25), D("10.01"))


def test_limit_intent_when_accepted_then_one_resting_child_that_fills_when_a_trade_reaches_it() -> None:
    order = intent("l1", "30", algo=LimitAlgo(), limit="10.00")
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order))
    [child] = run.children
    assert (child.quantity, child.limit_price, child.time_in_force) == (D(30), D("10.00"), "GTC")
    assert run.completions == []
    run.feed(trade("10.00", "12", ts=T0 + NS), trade("9.98", "50", ts=T0 + 2 * NS, n=1))
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.average_price, done.end_ts) == ("FILLED", D(30), D("10.00"),
                                                                                      T0 + 2 * NS)


def test_twap_when_timers_tick_then_six_slices_at_equal_event_times_summing_exactly() -> None:
    order = intent("t1", "100", algo=TwapAlgo(duration_s=60, slices=6))
    run = Pipeline.make(router_config(venue("sim"), lot_sizes={"XYZ": D(1)})).feed(DEEP_BOOK, order, accept(order))
    assert len(run.children) == 1                           # slice 0 goes with the decision
    run.feed(*timers(T0, T0 + 70 * NS))
    children = run.children
    assert [c.ts for c in children] == [T0 + i * 10 * NS for i in range(6)]
    assert [c.slice_index for c in children] == list(range(6))
    assert [c.quantity for c in children] == [D(16), D(17), D(17), D(16), D(17), D(17)]
    assert sum(c.quantity for c in children) == D(100)
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.children) == ("FILLED", D(100), 6)


def test_twap_when_no_timer_then_market_events_with_later_times_release_the_due_slices() -> None:
    order = intent("t2", "10", algo=TwapAlgo(duration_s=20, slices=2))
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order))
    run.feed(trade("10", "1", ts=T0 + 9 * NS))
    assert len(run.children) == 1
    run.feed(trade("10", "1", ts=T0 + 10 * NS, n=1))
    assert [c.ts for c in run.children] == [T0, T0 + 10 * NS]


def test_twap_when_quantity_is_not_whole_lots_then_the_remainder_goes_on_the_last_slice() -> None:
    assert split(D("10.5"), [1, 1, 1], D(1)) == [D(3), D(3), D("4.5")]
    assert split(D("0.250"), [1, 1, 1], D("0.001")) == [D("0.083"), D("0.083"), D("0.084")]
    assert sum(split(D("7"), [1] * 7, D(2))) == D(7)


def test_twap_when_randomized_then_times_are_jittered_within_bounds_reproducibly_per_order() -> None:
    interval = 10 * NS
    times = slice_times("order-a", T0, 60 * NS, 6, 0.3)
    assert times == slice_times("order-a", T0, 60 * NS, 6, 0.3)
    assert times != slice_times("order-b", T0, 60 * NS, 6, 0.3)
    assert times == sorted(times)
    assert times != [T0 + i * interval for i in range(6)]
    for i, t in enumerate(times):
        assert T0 <= t and abs(t - (T0 + i * interval)) <= 0.3 * interval


def test_twap_randomized_order_when_replayed_then_children_at_identical_times() -> None:
    def children_times() -> list[int]:
        order = intent("tr", "60", algo=TwapAlgo(duration_s=60, slices=6, randomize=0.4))
        run = Pipeline.make().feed(DEEP_BOOK, order, accept(order), *timers(T0, T0 + 60 * NS, NS // 10))
        return [c.ts for c in run.children]

    first = children_times()
    assert len(first) == 6 and first == children_times()


def test_twap_with_limit_when_market_is_above_the_limit_then_slices_carry_over_and_the_order_expires() -> None:
    order = intent("tl", "30", algo=TwapAlgo(duration_s=30, slices=3), limit="10.00")
    run = Pipeline.make().feed(book([("9.98", "100")], [("10.00", "4"), ("10.05", "100")]), order, accept(order))
    run.feed(*timers(T0, T0 + 40 * NS))
    assert all(c.limit_price == D("10.00") and c.time_in_force == "IOC" for c in run.children)
    assert all(r.last_price <= D("10.00") for r in run.reports if r.last_price is not None)
    # Slice 0 fills 4 of 10; slice 1 asks for 20 - 4 = 16 (the 4 at 10.00 are taken); slice 2 the rest.
    assert [c.quantity for c in run.children] == [D(10), D(16), D(26)]
    [done] = run.completions
    assert (done.status, done.filled_quantity) == ("EXPIRED", D(4))
    assert "26 unfilled" in (done.reason or "")


def test_vwap_when_history_exists_then_slices_follow_the_minute_volume_curve() -> None:
    day = 86_400 * NS
    history = [bar(T0 - day + i * 60 * NS, v) for i, v in enumerate(["1", "2", "3"])]
    order = intent("v1", "60", algo=VwapAlgo(duration_s=180))
    run = Pipeline.make(router_config(venue("sim"), lot_sizes={"XYZ": D(1)}))
    run.feed(*history, DEEP_BOOK, order, accept(order), *timers(T0, T0 + 200 * NS))
    assert [c.quantity for c in run.children] == [D(10), D(20), D(30)]
    assert [c.ts for c in run.children] == [T0, T0 + 60 * NS, T0 + 120 * NS]
    [done] = run.completions
    assert done.schedule_note is None and done.status == "FILLED"


def test_vwap_when_no_history_then_twap_slices_and_the_reason_is_recorded() -> None:
    order = intent("v2", "60", algo=VwapAlgo(duration_s=180, slices=3))
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order), *timers(T0, T0 + 200 * NS))
    assert [c.quantity for c in run.children] == [D(20), D(20), D(20)]
    [done] = run.completions
    assert "sliced evenly (TWAP)" in (done.schedule_note or "")


def test_vwap_when_bars_are_redelivered_then_volume_is_not_counted_twice() -> None:
    day = 86_400 * NS
    history = [bar(T0 - day, "1"), bar(T0 - day + 60 * NS, "3"), bar(T0 - day, "1")]
    order = intent("v3", "40", algo=VwapAlgo(duration_s=120))
    run = Pipeline.make(router_config(venue("sim"), lot_sizes={"XYZ": D(1)}))
    run.feed(*history, DEEP_BOOK, order, accept(order), *timers(T0, T0 + 130 * NS))
    assert [c.quantity for c in run.children] == [D(10), D(30)]


def test_pov_when_market_trades_then_children_keep_pace_with_the_rate_within_slice_bounds() -> None:
    order = intent("p1", "50", algo=PovAlgo(rate=0.1, min_slice=D(5), max_slice=D(20)))
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order))
    assert run.children == []                               # no market volume yet
    run.feed(trade("10", "30", ts=T0 + NS))                 # target 3 < min slice 5
    assert run.children == []
    run.feed(trade("10", "40", ts=T0 + 2 * NS, n=1))        # volume 70 → target 7
    run.feed(trade("10", "500", ts=T0 + 3 * NS, n=2))       # volume 570 → 57 → capped at 20
    run.feed(trade("10", "100", ts=T0 + 4 * NS, n=3))       # 670 → 67 → need 50 - 27 = 23, cap 20
    run.feed(trade("10", "10", ts=T0 + 5 * NS, n=4))        # rest of 3 (below min slice, but all that is left)
    assert [c.quantity for c in run.children] == [D(7), D(20), D(20), D(3)]
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.market_volume) == ("FILLED", D(50), D(680))
    assert done.participation == Decimal("0.073529")


def _summary(first_ts: int, ts: int, *prints: tuple[str, str]) -> TradeSummary:
    """The aggregator's summary of these (price, quantity) prints on mkt:XYZ (the router reads these live)."""
    prices = [D(price) for price, _ in prints]
    return TradeSummary(id=f"summary-{ts}", ts=ts, venue="mkt", symbol="XYZ", first_ts=first_ts, price=prices[-1],
                        high=max(prices), low=min(prices), volume=sum((D(q) for _, q in prints), D(0)),
                        quote_volume=sum((D(p) * D(q) for p, q in prints), D(0)), trade_count=len(prints))


def test_pov_when_market_trades_come_as_summaries_then_their_volume_and_notional_count_exactly() -> None:
    order = intent("p2", "10", algo=PovAlgo(rate=0.1, min_slice=D(1), max_slice=D(20)))
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order))
    run.feed(_summary(T0 - NS, T0 + NS, ("9", "1000")))          # began before the parent: not its volume
    assert run.children == []
    run.feed(_summary(T0 + NS, T0 + 2 * NS, ("10", "30"), ("11", "40")))    # volume 70 → target 7
    run.feed(_summary(T0 + 3 * NS, T0 + 3 * NS, ("12", "30")))              # volume 100 → target 10
    assert [c.quantity for c in run.children] == [D(7), D(3)]
    [done] = run.completions
    assert (done.market_volume, done.interval_vwap) == (D(100), (D(300) + D(440) + D(360)) / D(100))


def test_intents_when_rejected_by_risk_then_no_children() -> None:
    order = intent("r1", "10", algo=MarketAlgo())
    run = Pipeline.make().feed(DEEP_BOOK, order, accept(order, accepted=False), *timers(T0, T0 + 5 * NS))
    assert run.children == [] and run.completions == []


def test_decision_when_it_arrives_before_its_intent_then_the_parent_starts_on_the_intent() -> None:
    order = intent("d1", "10", algo=MarketAlgo())
    run = Pipeline.make().feed(DEEP_BOOK, accept(order), order)
    assert [c.quantity for c in run.children] == [D(10)]
