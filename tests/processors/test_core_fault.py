"""A core that raises mid-evolve is never trusted again: the event is dead-lettered with the error and
the host rebuilds its state from the newest snapshot (or the start) and the WAL without that event.

Real broker, real recorder, a real host; the core is a toy whose evolve changes its state in place and
then raises on one event, so a host that went on from that state would still hold the bad event's mark.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events import Bar, Bus, Trade, derived_id, new_event_id
from events._base import Event
from events.audit import DeadLetter
from events.codec import AnyEvent, decode_for_subject
from processors.fold import step
from processors.host import ProcessorHost
from processors.snapshots import Expected, SnapshotStore, state_digest
from store.follow import last_recorded
from store.recorder import record
from tests.conftest import eventually

T0 = 1_700_000_000_000_000_000
POISON_QUANTITY = D("13")


def _decide(state: list[str], event: AnyEvent) -> list[Event]:
    """A bar per trade, on a subject the core does not read (so only the log shows it was published)."""
    if not isinstance(event, Trade):
        return []
    return [Bar(id=derived_id(event.id, "bar"), ts=event.ts, venue=event.venue, symbol=event.symbol, interval="1m",
                open_time=event.ts // 60_000_000_000 * 60_000_000_000, open=event.price, high=event.price,
                low=event.price, close=event.price, volume=event.quantity, trade_count=1)]


def _evolve(state: list[str], event: AnyEvent) -> list[str]:
    """Remember each trade's id, in place; a trade of POISON_QUANTITY is remembered and then refused."""
    if isinstance(event, Trade):
        state.append(event.id)
        if event.quantity == POISON_QUANTITY:
            raise ValueError(f"quantity {event.quantity} is unlucky")
    return state


def _trade(n: int, quantity: D = D("1")) -> Trade:
    return Trade(id=new_event_id(), ts=T0 + n, venue="SIM", symbol="XYZ", price=D("10"), quantity=quantity)


async def _host(bus: Bus, wal_root: Path, *, snapshots: bool) -> ProcessorHost[list[str]]:
    store = None
    if snapshots:
        expected = Expected(processor="toy", partition="0/1", state_version=1, origin=state_digest([]))
        store = await SnapshotStore(bus, expected).open()
    return ProcessorHost(name="toy", bus=bus, wal_root=wal_root, streams=("SQ_MD",), state=[], decide=_decide,
                         evolve=_evolve, subscriptions=("sq.md.trade.>",), snapshots=store,
                         snapshot_every_events=3, snapshot_every_s=3600)


def _folded_without(events: list[Trade], poison: Trade) -> list[str]:
    """The state of folding every event but the poison one into a fresh state, with the one step."""
    state: list[str] = []
    for event in events:
        if event.id != poison.id:
            state, _ = step(_decide, _evolve, state, event, apply_outputs=False)
    return state


async def _dead_letter(bus: Bus) -> DeadLetter:
    """The host's newest dead letter, as the broker stored it."""
    message = await bus.js.get_last_msg("SQ_AUDIT", "sq.dlq.toy")
    assert message.data is not None
    return msgspec.json.decode(message.data, type=DeadLetter)


async def _recorded(bus: Bus, wal_root: Path) -> bool:
    last = (await bus.js.stream_info("SQ_MD")).state.last_seq
    return last_recorded(wal_root, ["SQ_MD"])["SQ_MD"] >= last


@pytest.mark.parametrize("snapshots", [True, False], ids=["from-snapshot", "from-start"])
async def test_core_raising_mid_evolve_then_event_dead_lettered_and_state_rebuilt_without_it(
        bus: Bus, tmp_path: Path, snapshots: bool) -> None:
    wal_root = tmp_path / "wal"
    stop_recorder = asyncio.Event()
    recorder = asyncio.create_task(record(bus, wal_root, ["SQ_MD"], stop_recorder))
    bars: list[str] = []

    async def on_bar(message: Any) -> None:
        bars.append(msgspec.json.decode(message.data, type=Bar).id)

    # A plain subscription on the hosts' own connection sees every bar they publish, in the order they
    # publish them, even one JetStream's dedupe would drop from the stream.
    await bus.nc.subscribe("sq.md.bar.>", cb=on_bar)
    host = await _host(bus, wal_root, snapshots=snapshots)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        await eventually(host.caught_up.is_set, message="host following")
        before = [_trade(n) for n in range(5)]
        await bus.publish_batch(before)
        await eventually(lambda: len(host.state) == 5, message="first trades applied")
        if snapshots:
            await eventually(lambda: host._generation >= 1 and host._snapshot_task is not None
                             and host._snapshot_task.done(), message="a snapshot before the fault")
        poison = _trade(5, POISON_QUANTITY)
        # One batch around the poison: the good trade before it in the batch must still be published once.
        around = [_trade(6), poison, _trade(7)]
        after = [_trade(n) for n in range(8, 11)]
        await bus.publish_batch(around)
        await bus.publish_batch(after)
        events = before + around + after
        expected = _folded_without(events, poison)
        await eventually(lambda: host.state == expected, message="state of every event but the poison one")
        await eventually(lambda: len(bars) == len(events) - 1, message="a bar per good trade")
    finally:
        stop.set()
        await task

    assert poison.id not in host.state, "the state is rebuilt, not the half-applied one"
    assert host.poison == {poison.id}
    if snapshots:
        assert host.restored_from is not None, "rebuilt from the snapshot and the tail"
    # The host publishes in order on one connection: a bar sent again by the rebuild would have come
    # before the bars of the trades after the poison, which have all arrived.
    assert sorted(bars) == sorted(derived_id(trade.id, "bar") for trade in events if trade is not poison)
    letter = await _dead_letter(bus)
    assert letter.source == "toy" and "ValueError" in letter.reason and "unlucky" in letter.reason
    assert decode_for_subject(letter.subject, letter.payload.encode()).id == poison.id

    # A restart without snapshots meets the poison in history: dead-lettered once more (the same letter
    # id, so the stream keeps one), passed over, and the state is the same; no bar is lost or resent.
    await eventually(lambda: _recorded(bus, wal_root), message="WAL has the stream")
    again = await _host(bus, wal_root, snapshots=False)
    stop = asyncio.Event()
    task = asyncio.create_task(again.run(stop))
    try:
        await eventually(again.caught_up.is_set, message="restarted host following")
    finally:
        stop.set()
        await task
    assert again.state == expected and again.poison == {poison.id}
    marker = Bar(id=new_event_id(), ts=T0, venue="SIM", symbol="XYZ", interval="1m", open_time=T0, open=D("1"),
                 high=D("1"), low=D("1"), close=D("1"), volume=D("1"), trade_count=1)
    await bus.publish(marker)       # after anything the restarted host published, on the same connection
    await eventually(lambda: marker.id in bars, message="marker bar seen")
    assert len(bars) == len(events), "every bar once, then the marker: the restart resent none"
    assert (await bus.js.stream_info("SQ_AUDIT")).state.messages == 1
    stop_recorder.set()
    await recorder
