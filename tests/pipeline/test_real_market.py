"""The order path over a real broker on the recorded Binance market: a TWAP on NKNUSDT, checked by hand.

The shipped recordings (`data/samples/cryptofeed_BINANCE.http.0.0`, then `.ws.1.0`) are replayed
onto the bus with the file-replay connector at speed 0, and the simulated venues are configured
exactly as `sq up` configures them (`gateway/defaults/execution.toml`: SIM_A and SIM_B, both
mirroring market venue `binance`).

The recording is from October 2021, so the router's clock must be event time, not the wall
clock: instead of the wall-clock ticker the test publishes the router's `TimerFired` at each
slice time, after the recording up to that time has been replayed and applied by every core.
That makes the book each child meets the one rebuilt by hand from the same records.

Risk and the router read the aggregator's trade summaries, not each trade: a `tape` host runs that part
of the aggregator (`processors.aggregator.tape`, at `sq up`'s 50 ms cadence), and the test folds the same
records through the same tape to know which summaries each core must have applied, and which make the
interval VWAP.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from events import Bus, OrderIntent, TwapAlgo, intent_id_for
from events.market import BookDelta, BookSnapshot, BookTop, Trade, TradeSummary
from events.subjects import subject_for, subscribed
from events.trading import ChildOrder, ExecutionReport, ParentOrderCompleted, RiskDecision
from processors.aggregator.book import levels
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.aggregator.tape import Tape, on_time, on_trade
from processors.connector.recordings import Record, read_bytes, read_records
from processors.connector.replay import replay
from processors.host import ProcessorHost
from processors.router.config import load_router_config
from processors.router.runner import timer_event
from processors.venue_sim.config import load_sim_config
from projections.service import Projections
from store.recorder import record
from tests.conftest import REPO_ROOT, eventually
from tests.pipeline._offline import STREAMS, order_path_cores, recorded
from tests.pipeline.conftest import LIMITS

SAMPLES = REPO_ROOT / "data" / "samples"
FILES = ("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0")
EXECUTION = REPO_ROOT / "gateway" / "defaults" / "execution.toml"
SYMBOL = "NKNUSDT"
NS = 1_000_000_000
QUANTITY = Decimal(400)
SUMMARY_EVERY_NS = 50_000_000                   # `sq processor aggregator`'s default cadence


def _tape(tape: Tape, event: Any) -> list[TradeSummary]:
    """What the aggregator's tape publishes on `event` (a trade folds in; any market event moves time on)."""
    if isinstance(event, Trade):
        return on_trade(tape, event)
    return on_time(tape, event.ts) if isinstance(event, BookSnapshot | BookDelta) else []
DURATION_S, SLICES = 20, 4


@dataclass
class MarketStack:
    """Recorder, risk, router and venue-sim hosts (configured as `sq up` does) and projections."""

    bus: Bus
    data_dir: Path
    projections: Projections
    hosts: dict[str, ProcessorHost[Any]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # The same tape as the `tape` host's, folded here over the same records: the summaries it published.
    tape: Tape = field(default_factory=lambda: Tape(every_ns=SUMMARY_EVERY_NS))
    summaries: list[TradeSummary] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@pytest.fixture
async def market_stack(bus: Bus, tmp_path: Path) -> AsyncIterator[MarketStack]:
    """The order path with the default execution config and no wall-clock timer (the test sends event-time ticks)."""
    router_config, sim_config = load_router_config(EXECUTION), load_sim_config(EXECUTION)
    assert [v.name for v in router_config.venues] == ["SIM_A", "SIM_B"]
    assert {v.market_venue for v in router_config.venues} == {"binance"}
    cores = order_path_cores(router_config.venues, LIMITS, router_config=router_config, sim_config=sim_config)
    stack = MarketStack(bus, tmp_path, Projections(tmp_path / "wal", tmp_path / "checkpoints"))
    stack.tasks.append(asyncio.create_task(record(bus, tmp_path / "wal", list(STREAMS), stack.stop)))
    for name, core in cores.items():
        host: ProcessorHost[Any] = ProcessorHost(name=name, bus=bus, wal_root=tmp_path / "wal", streams=STREAMS,
                                                  state=core.state, decide=core.decide, evolve=core.evolve,
                                                  wanted=core.wanted, apply_outputs=True)
        stack.hosts[name] = host
        stack.tasks.append(asyncio.create_task(host.run(stack.stop)))
    stack.hosts["tape"] = ProcessorHost(name="tape", bus=bus, wal_root=tmp_path / "wal", streams=STREAMS,
                                        state=Tape(every_ns=SUMMARY_EVERY_NS), decide=_tape, evolve=lambda tape, _: tape,
                                        wanted=subscribed(("sq.md.trade.>", "sq.md.book.>")))
    stack.tasks.append(asyncio.create_task(stack.hosts["tape"].run(stack.stop)))
    stack.tasks.append(asyncio.create_task(stack.projections.follow(bus, stack.stop)))
    await eventually(lambda: all(h.caught_up.is_set() for h in stack.hosts.values())
                     and stack.projections.caught_up.is_set(), message="stack caught up")
    yield stack
    stack.stop.set()
    await asyncio.wait_for(asyncio.gather(*stack.tasks, return_exceptions=True), 20)


def _recording() -> tuple[list[Record], int]:
    """The records of both files in file order, and how many come from the first (the REST snapshots)."""
    if not all((SAMPLES / name).exists() for name in FILES):
        pytest.skip(f"recordings {FILES} are not in {SAMPLES}")
    files = [[r for r in read_records(read_bytes(SAMPLES / name), name=name) if isinstance(r, Record)]
             for name in FILES]
    return [r for records in files for r in records], len(files[0])


def _cut(records: Sequence[Record], done: int, ts: int, snapshots: int) -> int:
    """Index of the first record from `done` on (in file order) whose event time is at or after `ts`.

    The REST snapshots (the first file) always go first, whatever their time: the venue's books
    start from them, as the connector's snapshot-sync procedure does.
    """
    done = max(done, snapshots)
    return next((i for i in range(done, len(records)) if records[i].event.ts >= ts), len(records))


async def _replay_applied(stack: MarketStack, records: Sequence[Record]) -> None:
    """Replay records flat out and wait until every core has applied each one it reads, and each trade
    summary the tape publishes on them."""
    before = {name: host.applied for name, host in stack.hosts.items()}
    summaries = [summary for r in records for summary in _tape(stack.tape, r.event)]
    stack.summaries += summaries
    expected = {name: sum(1 for e in [*(r.event for r in records), *summaries]
                          if host.wanted is None or host.wanted(subject_for(e)))
                for name, host in stack.hosts.items()}
    stats = await replay(stack.bus, records, speed=0, source="test-replay", name="binance")
    assert stats.published == len(records)
    await eventually(lambda: all(h.applied >= before[n] + expected[n] for n, h in stack.hosts.items()),
                     timeout=30, message="recording applied by every core")


def _book_asks(records: Sequence[Record]) -> list[tuple[Decimal, Decimal]]:
    """NKNUSDT asks (price, size) best first, from the snapshot and deltas in these records, in file order."""
    sync = BookSync()
    for r in records:
        event = r.event
        if getattr(event, "symbol", None) != SYMBOL:
            continue
        if isinstance(event, BookSnapshot):
            on_snapshot(sync, event)
        elif isinstance(event, BookDelta):
            on_delta(sync, event)
    book = sync.book
    return [(Decimal(p).scaleb(-book.price_scale), Decimal(s).scaleb(-book.size_scale))
            for p, s in levels(book, bid=False)]


def _trading(stack: MarketStack) -> list[object]:
    return [e.event for e in recorded(stack.data_dir / "wal") if e.stream == "SQ_TRADING"]


async def test_twap_on_replayed_binance_recording_is_sliced_on_schedule_filled_at_the_book_with_right_tca(
        market_stack: MarketStack) -> None:
    stack = market_stack
    records, snapshots = _recording()
    first_top = next(r.event for r in records if isinstance(r.event, BookTop) and r.event.symbol == SYMBOL)
    start = first_top.ts + 1
    step = DURATION_S * NS // SLICES
    times = [start + i * step for i in range(SLICES)]

    # The recording up to the order's arrival, then the intent (event time = start).
    done = _cut(records, 0, start, snapshots)
    await _replay_applied(stack, records[:done])
    arrival_top = [r.event for r in records[:done] if isinstance(r.event, BookTop) and r.event.symbol == SYMBOL][-1]
    intent = OrderIntent(id=intent_id_for("ACC1", "nkn-twap"), ts=start, account="ACC1", client_order_id="nkn-twap",
                         symbol=SYMBOL, side="BUY", quantity=QUANTITY, algo=TwapAlgo(duration_s=DURATION_S, slices=SLICES))
    await stack.bus.publish(intent)
    books = [_book_asks(records[:done])]

    def children() -> list[ChildOrder]:
        return [e for e in _trading(stack) if isinstance(e, ChildOrder) and e.order_id == intent.id]

    def child_filled(index: int) -> bool:
        rows = [c for c in stack.projections.state.children.values()
                if c.order_id == intent.id and c.slice_index == index]
        return bool(rows) and rows[0].status == "FILLED"

    await eventually(lambda: child_filled(0), timeout=20, message="slice 0 filled")
    # Each later slice: replay the recording up to its time, then the router's tick at that time.
    for index, due in enumerate(times[1:], start=1):
        cut = _cut(records, done, due, snapshots)
        await _replay_applied(stack, records[done:cut])
        done = cut
        books.append(_book_asks(records[:done]))
        await stack.bus.publish(timer_event("router", due))
        await eventually(functools.partial(child_filled, index), timeout=20, message=f"slice {index} filled")
    seen_while_working = list(stack.summaries)
    await _replay_applied(stack, records[done:])

    def completed() -> list[ParentOrderCompleted]:
        return [e for e in _trading(stack) if isinstance(e, ParentOrderCompleted) and e.order_id == intent.id]

    await eventually(lambda: bool(completed()), timeout=20, message="TCA recorded")
    trading = _trading(stack)
    [decision] = [e for e in trading if isinstance(e, RiskDecision) and e.order_id == intent.id]
    assert decision.accepted and not decision.failures

    # Sliced on schedule, in event time, equal slices, to the venue the default config makes cheapest:
    # SIM_A costs 10 + 2 ms x 0.1 = 10.2 bps, SIM_B 7.5 + 15 ms x 0.1 = 9.0 bps.
    kids = children()
    assert [c.ts for c in kids] == times
    assert [c.slice_index for c in kids] == list(range(SLICES))
    assert [c.quantity for c in kids] == [QUANTITY / SLICES] * SLICES
    assert {c.venue for c in kids} == {"SIM_B"} and {c.time_in_force for c in kids} == {"IOC"}

    # Each slice takes the best ask of the book rebuilt by hand from the records replayed before it
    # (each best level holds more than the whole order, so earlier slices' takings never exhaust it).
    sim = load_sim_config(EXECUTION)
    fee_bps = Decimal("7.5")
    fills = [e for e in trading if isinstance(e, ExecutionReport) and e.order_id == intent.id and e.last_quantity]
    assert len(fills) == SLICES
    for child, fill, asks in zip(kids, fills, books, strict=True):
        best_price, best_size = asks[0]
        assert best_size >= QUANTITY
        assert (fill.child_id, fill.status, fill.last_price, fill.last_quantity) == \
               (child.child_id, "FILLED", best_price, child.quantity)
        assert fill.ts == child.ts + 15_000_000 and fill.liquidity == "TAKER"
        assert fill.fee == (best_price * child.quantity * fee_bps / 10_000).quantize(
            Decimal(1).scaleb(-sim.fee_places), rounding=ROUND_HALF_EVEN)

    # Position and TCA by hand.
    notional = sum((asks[0][0] * c.quantity for c, asks in zip(kids, books, strict=True)), Decimal(0))
    average = notional / QUANTITY
    assert arrival_top.bid_price is not None and arrival_top.ask_price is not None
    arrival = (arrival_top.bid_price + arrival_top.ask_price) / 2
    fees = sum((f.fee for f in fills), Decimal(0))
    position = stack.projections.state.positions[("ACC1", SYMBOL)]
    assert position.quantity == QUANTITY
    assert position.avg_price is not None and abs(position.avg_price - average) <= Decimal("1E-12")
    [done_event] = completed()
    assert (done_event.status, done_event.filled_quantity, done_event.children) == ("FILLED", QUANTITY, SLICES)
    assert done_event.start_ts == start and done_event.end_ts == times[-1] + 15_000_000
    assert done_event.arrival_price == arrival.quantize(Decimal("1E-10"))
    assert done_event.average_price == average.quantize(Decimal("1E-10"))
    assert done_event.fees == fees
    assert done_event.shortfall_bps == ((average - arrival) / arrival * 10_000).quantize(Decimal("0.0001"))
    # The NKNUSDT trades the router saw while the order worked make the interval VWAP: those of the summaries
    # published then whose first trade came at or after the start.
    summaries = [s for s in seen_while_working if s.symbol == SYMBOL and start <= s.first_ts]
    volume = sum((s.volume for s in summaries), Decimal(0))
    assert volume > 0 and done_event.market_volume == volume
    vwap = sum((s.quote_volume for s in summaries), Decimal(0)) / volume
    assert done_event.interval_vwap == vwap.quantize(Decimal("1E-10"))
    assert done_event.vwap_slippage_bps == ((average - vwap) / vwap * 10_000).quantize(Decimal("0.0001"))
