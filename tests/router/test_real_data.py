"""A TWAP filled by the simulated venue against the real recorded Binance NKNUSDT book and trades."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from events import BookDelta, BookSnapshot, BookTop, TimerFired, Trade, TwapAlgo, encode
from events._base import Event
from processors.aggregator.book import levels
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.connector.recordings import Record, read_bytes, read_records
from tests.router.factories import NS, D, Pipeline, accept, intent, router_config, sim_config, timer, venue

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
FILES = ("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0")
SIM = venue("sim_binance", market="binance", taker="10", latency_ms=5)


def _market() -> list[Event]:
    if not all((SAMPLES / name).exists() for name in FILES):
        pytest.skip(f"recordings {FILES} are not in {SAMPLES}")
    events = [r.event for name in FILES for r in read_records(read_bytes(SAMPLES / name), name=name)
              if isinstance(r, Record) and getattr(r.event, "symbol", None) == "NKNUSDT"]
    return sorted(events, key=lambda e: e.ts)                # stable: file order within a timestamp


def _run() -> tuple[Pipeline, list[Event], int]:
    market = _market()
    start = next(e.ts for e in market if isinstance(e, BookTop)) + 1
    order = intent("real-twap", "12000", symbol="NKNUSDT", algo=TwapAlgo(duration_s=25, slices=5), ts=start)
    ticks = [timer(start + i * NS) for i in range(27)]
    stream = sorted([*market, *ticks], key=lambda e: (e.ts, isinstance(e, TimerFired)))
    run = Pipeline.make(router_config(SIM, lot_sizes={"NKNUSDT": D(1)}), sim_config(SIM))
    run.feed(*[e for e in stream if e.ts < start])
    run.feed(order, accept(order))
    run.feed(*[e for e in stream if e.ts >= start])
    return run, market, start


def _asks_at(market: list[Event], ts: int) -> dict[Decimal, Decimal]:
    """The NKNUSDT asks of a book rebuilt independently from the recording up to `ts`."""
    sync = BookSync()
    for event in market:
        if event.ts > ts:
            break
        if isinstance(event, BookSnapshot):
            on_snapshot(sync, event)
        elif isinstance(event, BookDelta):
            on_delta(sync, event)
    book = sync.book
    return {Decimal(p).scaleb(-book.price_scale): Decimal(s).scaleb(-book.size_scale)
            for p, s in levels(book, bid=False)}


def test_twap_on_real_nknusdt_data_when_run_then_sliced_on_schedule_filled_at_real_levels_with_right_tca() -> None:
    run, market, start = _run()
    children = run.children
    assert [c.ts for c in children] == [start + i * 5 * NS for i in range(5)]
    assert [c.quantity for c in children] == [D(2400)] * 5 and {c.venue for c in children} == {"sim_binance"}
    fills = [r for r in run.reports if r.last_quantity]
    for c in children:
        asks = _asks_at(market, c.ts)
        mine = [r for r in fills if r.child_id == c.child_id]
        assert sum(r.last_quantity for r in mine) == D(2400)
        assert all(r.ts == c.ts + 5_000_000 for r in mine)
        assert mine[0].last_price >= min(asks)               # never better than the real best ask
        for r in mine:
            assert r.last_price in asks and r.last_quantity <= asks[r.last_price]
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.children) == ("FILLED", D(12000), 5)
    notional = sum(r.last_quantity * r.last_price for r in fills)
    average = notional / D(12000)
    assert done.average_price == average.quantize(Decimal("1E-10"))
    last_top = [e for e in market if isinstance(e, BookTop) and e.ts < start][-1]
    arrival = (last_top.bid_price + last_top.ask_price) / 2
    assert done.arrival_price == arrival
    assert done.shortfall_bps == ((average - arrival) / arrival * 10_000).quantize(Decimal("0.0001"))
    # The recording has one NKNUSDT trade inside the order's life: 58 @ 0.3528.
    [print_] = [e for e in market if isinstance(e, Trade) and start <= e.ts <= done.end_ts]
    assert (done.interval_vwap, done.market_volume) == (print_.price, print_.quantity)
    assert done.vwap_slippage_bps == ((average - print_.price) / print_.price * 10_000).quantize(Decimal("0.0001"))
    assert done.fees == sum(r.fee for r in fills)


def test_twap_on_real_data_when_replayed_then_every_output_is_byte_identical() -> None:
    first, second = _run()[0], _run()[0]
    assert [encode(e) for e in first.outputs()] == [encode(e) for e in second.outputs()]
