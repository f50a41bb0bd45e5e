"""A restarted processor republishes only what a crash lost, including outputs on subjects it never reads."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from events import Bar, Bus, Trade, derived_id, new_event_id
from events.codec import AnyEvent
from processors.host import ProcessorHost
from store.recorder import record
from tests.conftest import eventually


def _bar_per_trade(state: None, event: AnyEvent) -> list[Bar]:
    """A toy core whose outputs (bars) are on a subject it does not read (it reads trades only)."""
    if not isinstance(event, Trade):
        return []
    return [Bar(id=derived_id(event.id, "bar"), ts=event.ts, venue=event.venue, symbol=event.symbol, interval="1m",
                open_time=event.ts // 60_000_000_000 * 60_000_000_000, open=event.price, high=event.price,
                low=event.price, close=event.price, volume=event.quantity, trade_count=1)]


def _host(bus: Bus, wal_root: Path) -> ProcessorHost[None]:
    return ProcessorHost(name="toy", bus=bus, wal_root=wal_root, streams=("SQ_MD",), state=None,
                         decide=_bar_per_trade, evolve=lambda state, event: state,
                         wanted=lambda subject: subject.startswith("sq.md.trade."))


async def test_restart_finds_its_recorded_outputs_and_only_republishes_lost_ones(bus: Bus, tmp_path: Path) -> None:
    wal_root = tmp_path / "wal"
    stop_recorder = asyncio.Event()
    recorder = asyncio.create_task(record(bus, wal_root, ["SQ_MD"], stop_recorder))
    stop = asyncio.Event()
    first = _host(bus, wal_root)
    task = asyncio.create_task(first.run(stop))
    await eventually(first.caught_up.is_set, message="first run following")
    trades = [Trade(id=new_event_id(), ts=1_700_000_000_000_000_000 + i, venue="SIM", symbol="XYZ",
                    price=D("10"), quantity=D("1")) for i in range(5)]
    await bus.publish_batch(trades)

    async def recorded() -> int:
        return int((await bus.js.stream_info("SQ_MD")).state.last_seq)

    await eventually(lambda: _at_least(recorded(), 10), message="trades and bars in the stream")
    stop.set()
    await task
    await eventually(lambda: _wal_has(wal_root, 10), message="recorder caught up")

    second = _host(bus, wal_root)
    assert await asyncio.to_thread(second.catch_up) == {"SQ_MD": 10}
    assert second.recovered == [], "bars already recorded are not lost, even though the core never reads them"

    # A trade recorded while no processor ran: its bar was never published, so it is recovered.
    late = Trade(id=new_event_id(), ts=1_700_000_000_000_000_099, venue="SIM", symbol="XYZ", price=D("11"),
                 quantity=D("2"))
    await bus.publish(late)
    await eventually(lambda: _wal_has(wal_root, 11), message="late trade recorded")
    third = _host(bus, wal_root)
    await asyncio.to_thread(third.catch_up)
    assert [bar.id for bar in third.recovered] == [derived_id(late.id, "bar")]
    stop_recorder.set()
    await recorder


async def _at_least(value, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await value >= expected


def _wal_has(wal_root: Path, count: int) -> bool:
    from store.follow import last_recorded

    return last_recorded(wal_root, ["SQ_MD"])["SQ_MD"] >= count
