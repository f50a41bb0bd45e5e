"""Venue selection by price, fees and latency, alone and through the router."""

from __future__ import annotations

from events import MarketAlgo, TwapAlgo
from processors.router.venues import MarketView, rank_venues
from tests.router.factories import (
    NS,
    T0,
    D,
    Pipeline,
    accept,
    book,
    intent,
    router_config,
    sim_config,
    timers,
    top,
    venue,
)


def _view(*tops: tuple[str, str | None, str | None]) -> MarketView:
    view = MarketView()
    for market, bid, ask in tops:
        view.apply(top(bid, ask, venue=market))
    return view


def _best(config, view, side="BUY", limit=None, **kw) -> str:  # type: ignore[no-untyped-def]
    return rank_venues(config, view, "XYZ", side, None if limit is None else D(limit), **kw)[0].venue


def test_selection_when_a_better_price_outweighs_a_higher_fee_then_the_cheaper_book_wins() -> None:
    config = router_config(venue("A", market="mA", taker="10"), venue("B", market="mB", taker="2"))
    assert _best(config, _view(("mA", "99", "100.00"), ("mB", "99", "100.50"))) == "A"   # 100.10 vs 100.5201


def test_selection_when_prices_are_close_then_the_lower_fee_wins() -> None:
    config = router_config(venue("A", market="mA", taker="10"), venue("B", market="mB", taker="2"))
    ranked = rank_venues(config, _view(("mA", "99", "100.00"), ("mB", "99", "100.05")), "XYZ", "BUY", None)
    assert [c.venue for c in ranked] == ["B", "A"]                                        # 100.07001 vs 100.1
    assert ranked[0].score == D("100.05") * D("1.0002")


def test_selection_when_price_and_fee_tie_then_the_lower_latency_wins() -> None:
    config = router_config(venue("A", market="m", taker="5", latency_ms=50), venue("B", market="m", taker="5",
                                                                                   latency_ms=1))
    assert _best(config, _view(("m", "99", "100"))) == "B"
    assert _best(config, _view(("m", "99", "100")), side="SELL") == "B"


def test_selection_when_selling_then_the_highest_bid_net_of_costs_wins() -> None:
    config = router_config(venue("A", market="mA", taker="10"), venue("B", market="mB", taker="2"))
    assert _best(config, _view(("mA", "100.00", "101"), ("mB", "99.95", "101")), side="SELL") == "B"
    assert _best(config, _view(("mA", "100.00", "101"), ("mB", "99.50", "101")), side="SELL") == "A"


def test_selection_when_a_limit_rests_everywhere_then_the_maker_fee_decides() -> None:
    config = router_config(venue("A", market="mA", maker="1"), venue("B", market="mB", maker="-0.5"))
    ranked = rank_venues(config, _view(("mA", "99", "100"), ("mB", "99", "100")), "XYZ", "BUY", D("99.5"))
    assert [c.venue for c in ranked] == ["B", "A"] and not ranked[0].marketable


def test_selection_when_no_market_data_then_unpriced_venues_rank_by_cost_then_config_order() -> None:
    config = router_config(venue("A", taker="3"), venue("B", taker="1"), venue("C", taker="1"))
    assert [c.venue for c in rank_venues(config, MarketView(), "XYZ", "BUY", None)] == ["B", "C", "A"]


def test_selection_when_a_venue_does_not_list_the_symbol_or_the_intent_names_a_venue_then_respected() -> None:
    config = router_config(venue("A", market="mA", symbols=["OTHER"]), venue("B", market="mB", taker="50"))
    view = _view(("mA", "99", "90"), ("mB", "99", "100"))
    assert _best(config, view) == "B"
    assert _best(config, view, venue="A") == "A"


def test_router_when_venues_differ_then_each_child_goes_to_the_best_venue_at_its_time() -> None:
    venues = [venue("sim_a", market="mA", taker="7.5", latency_ms=2), venue("sim_b", market="mB", taker="2",
                                                                                latency_ms=20)]
    run = Pipeline.make(router_config(*venues), sim_config(*venues))
    run.feed(book([("9.9", "100")], [("10.00", "100")], venue="mA"), top("9.9", "10.00", venue="mA"),
             book([("9.9", "100")], [("10.02", "100")], venue="mB"), top("9.9", "10.02", venue="mB"))
    order = intent("sel", "20", algo=TwapAlgo(duration_s=20, slices=2))
    run.feed(order, accept(order))
    # sim_a: 10.00 * (1 + 7.7 bps) = 10.0077; sim_b: 10.02 * (1 + 4 bps) = 10.024.
    assert run.children[0].venue == "sim_a"
    run.feed(top("9.9", "10.05", venue="mA", ts=T0 + 5 * NS), *timers(T0 + 10 * NS, T0 + 10 * NS))
    assert run.children[1].venue == "sim_b"                  # sim_a's ask moved up to 10.05
    [done] = run.completions
    assert done.status == "FILLED" and done.arrival_price == D("9.95")   # best bid 9.9, best ask 10.00


def test_router_when_the_intent_names_a_venue_then_children_go_there() -> None:
    venues = [venue("sim_a", market="mA"), venue("sim_b", market="mB", taker="100")]
    run = Pipeline.make(router_config(*venues), sim_config(*venues))
    order = intent("named", "5", algo=MarketAlgo(), venue="sim_b")
    run.feed(book([("9", "100")], [("10", "100")], venue="mB"), order, accept(order))
    assert [c.venue for c in run.children] == ["sim_b"] and run.completions[0].status == "FILLED"
