"""The aggregator's trade tape: each symbol's trades conflated into TradeSummary events, leading edge first."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from events import BookDelta, Trade, TradeSummary
from events.ids import derived_id
from processors.aggregator.config import AggregatorConfig
from processors.aggregator.core import handle, initial_state

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def trade(n: int, ms: float, price: str = "100", quantity: str = "1", symbol: str = "BTCUSDT") -> Trade:
    return Trade(id=f"t-{symbol}-{n}", ts=T0 + int(ms * MS), venue="BINANCE", symbol=symbol, price=D(price),
                 quantity=D(quantity))


def depth(ms: float, symbol: str = "ETHUSDT") -> BookDelta:
    return BookDelta(id=f"d-{ms}", ts=T0 + int(ms * MS), venue="BINANCE", symbol=symbol, first_update_id=1,
                     last_update_id=1, bids=[], asks=[])


def summaries(every_ms: int, events: list) -> list[TradeSummary]:
    state = initial_state(AggregatorConfig(intervals=("1m",), summary_every_ms=every_ms))
    return [out for event in events for out in handle(state, event) if isinstance(out, TradeSummary)]


def test_a_trade_after_quiet_is_summarised_alone_at_once_then_the_next_ones_once_per_cadence() -> None:
    out = summaries(50, [trade(1, 0, "100"), trade(2, 10, "101", "2"), trade(3, 20, "99"),
                         trade(4, 60, "100.5")])
    assert [(s.trade_count, s.price) for s in out] == [(1, D("100")), (3, D("100.5"))]
    first, second = out
    assert first.id == derived_id("t-BTCUSDT-1", "summary") and first.causation_id == "t-BTCUSDT-1"
    assert (second.first_ts, second.ts) == (T0 + 10 * MS, T0 + 60 * MS)
    assert (second.high, second.low, second.volume) == (D("101"), D("99"), D("4"))
    assert second.quote_volume == D("101") * 2 + D("99") + D("100.5")


def test_folded_trades_are_published_by_any_later_market_event_once_due() -> None:
    out = summaries(50, [trade(1, 0), trade(2, 10, "102"), depth(30), depth(55)])
    assert [(s.trade_count, s.price, s.ts) for s in out] == [(1, D("100"), T0), (1, D("102"), T0 + 10 * MS)]


def test_symbols_are_conflated_apart() -> None:
    out = summaries(50, [trade(1, 0, symbol="A"), trade(1, 1, symbol="B"), trade(2, 2, symbol="A"),
                         trade(3, 60, symbol="A")])
    assert [(s.symbol, s.trade_count) for s in out] == [("A", 1), ("B", 1), ("A", 2)]


def test_no_cadence_means_one_summary_per_trade() -> None:
    assert [s.trade_count for s in summaries(0, [trade(n, n * 0.1) for n in range(5)])] == [1] * 5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["A", "B"]), st.integers(1, 500), st.integers(1, 9)),
                max_size=60),
       st.sampled_from([0, 5, 50, 1000]))
def test_summaries_conserve_trades_volume_and_notional_and_keep_the_cadence(
        steps: list[tuple[int, str, int, int]], every_ms: int) -> None:
    ms, trades = 0, []
    for n, (gap, symbol, price, quantity) in enumerate(steps):
        ms += gap
        trades.append(trade(n, ms, str(D(price) / 4), str(quantity), symbol=symbol))
    state = initial_state(AggregatorConfig(intervals=("1m",), summary_every_ms=every_ms))
    emitted: list[tuple[int, TradeSummary]] = []
    for event in [*trades, depth(ms + every_ms + 1)]:        # a last event flushes what is folded
        emitted += [(event.ts, out) for out in handle(state, event) if isinstance(out, TradeSummary)]
    out = [summary for _, summary in emitted]
    for symbol in ("A", "B"):
        mine = [t for t in trades if t.symbol == symbol]
        got = [s for s in out if s.symbol == symbol]
        assert sum(s.trade_count for s in got) == len(mine)
        assert sum((s.volume for s in got), D(0)) == sum((t.quantity for t in mine), D(0))
        assert sum((s.quote_volume for s in got), D(0)) == sum((t.price * t.quantity for t in mine), D(0))
        if mine:
            assert got[-1].price == mine[-1].price
            assert max(s.high for s in got) == max(t.price for t in mine)
            assert min(s.low for s in got) == min(t.price for t in mine)
        # One summary per cadence of event time at most, per symbol.
        times = [at for at, summary in emitted if summary.symbol == symbol]
        assert all(later - earlier >= every_ms * MS for earlier, later in zip(times, times[1:], strict=False))
        assert len(got) == len({s.id for s in got})
    again = summaries(every_ms, [*trades, depth(ms + every_ms + 1)])
    assert again == out
