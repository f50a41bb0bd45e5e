"""Bounded broker storage: streams whose limits discard old messages while processors are SIGKILLed and
restarted lose nothing and duplicate nothing; the WAL keeps all of it; restarts come from snapshots."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest

from events import Broker, Bus, MarketAlgo, OrderIntent, intent_id_for
from processors.risk import Limits, LimitsFile
from processors.snapshots import Expected, SnapshotStore, read_header
from projections.service import Projections
from projections.state import ProjectionState
from store.reader import WalReader
from store.recorder import retention
from tests.conftest import eventually
from tests.pipeline.conftest import EXECUTION_TOML, ProcessStack, publish_market

ORDERS = 48
# A thousand or so messages per stream: several times the largest burst of the run (a restarted venue
# publishing what it decided while down), and the router's 10 ms timer alone fills it in about 15 s.
MAX_BYTES = 256 * 1024
PROCESSORS = ("risk", "router", "venue-sim")


@pytest.fixture
def bounded(broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProcessStack:
    monkeypatch.setenv("SQ_STREAM_MAX_BYTES", str(MAX_BYTES))
    (tmp_path / "execution.toml").write_text(EXECUTION_TOML)
    limits = tmp_path / "limits.json"
    limits.write_bytes(msgspec.json.encode(LimitsFile(defaults=Limits(max_order_quantity=D(100)))))
    snapshots = ["--snapshot-every-events", "25", "--snapshot-every-s", "1"]
    return ProcessStack(broker.url, tmp_path, {
        "recorder": ["processor", "recorder", "--port", "0"],
        "risk": ["processor", "risk", "--limits", str(limits), "--port", "0", *snapshots],
        "router": ["processor", "router", "--config", str(tmp_path / "execution.toml"), "--timer-ms", "10",
                   "--port", "0", *snapshots],
        "venue-sim": ["processor", "venue-sim", "--config", str(tmp_path / "execution.toml"), "--port", "0",
                      *snapshots],
    })


async def _consumers(bus: Bus, at_least: int) -> bool:
    return int((await bus.js.stream_info("SQ_TRADING")).state.consumer_count) >= at_least


def _settled(projections: Projections) -> bool:
    projections.state = ProjectionState()
    projections.load_and_catch_up()
    orders = projections.state.orders
    return len(orders) == ORDERS and all(order.status == "FILLED" for order in orders.values())


async def test_streams_discarding_old_messages_while_processors_restart_lose_and_duplicate_nothing(
        bus: Bus, bounded: ProcessStack, tmp_path: Path) -> None:
    for name in ("recorder", *PROCESSORS):
        bounded.start(name)
    try:
        await eventually(lambda: _consumers(bus, 1 + len(PROCESSORS)), message="every process following")
        info = await bus.js.stream_info("SQ_TRADING")
        assert info.config.max_bytes == MAX_BYTES, "processes set the stream's limit from SQ_STREAM_MAX_BYTES"
        now = time.time_ns()
        await publish_market(bus, now)
        for index in range(ORDERS):
            await bus.publish(OrderIntent(id=intent_id_for("ACC1", f"bounded-{index}"), ts=now + index,
                                          account="ACC1", client_order_id=f"bounded-{index}", symbol="XYZ",
                                          side="BUY" if index % 3 else "SELL", quantity=D(1 + index % 4),
                                          limit_price=D("10.50") if index % 3 else D("9.50"), algo=MarketAlgo()))
            if index % 8 == 7:
                name = PROCESSORS[(index // 8) % len(PROCESSORS)]
                bounded.kill(name)
                bounded.start(name)
            await asyncio.sleep(0.05)    # pacing, so restarts happen while intents are in flight
        projections = Projections(tmp_path / "wal", tmp_path / "check")
        await eventually(lambda: asyncio.to_thread(_settled, projections), timeout=180, interval=0.5,
                         message="every order filled")

        async def discarded() -> bool:
            return int((await bus.js.stream_info("SQ_TRADING")).state.first_seq) > 1

        await eventually(discarded, timeout=90, message="the stream's limit discarded its oldest messages")
        for name in PROCESSORS:
            store = await SnapshotStore(bus, Expected(name, "0/1", 1, "")).open()
            blobs = [blob for slot in (0, 1) if (blob := await store.get_raw(slot)) is not None]
            assert blobs and max(read_header(b).generation for b in blobs) >= 2, f"{name} wrote snapshots"
    finally:
        bounded.stop_all()

    last = (await bus.js.stream_info("SQ_TRADING")).state.last_seq
    seqs = [record.seq for record in WalReader(tmp_path / "wal" / "SQ_TRADING").records()]
    assert seqs == list(range(1, last + 1)), "the WAL holds every message, including those the broker dropped"
    state = projections.state
    decisions = [row for row in state.audit if row.event_type == "RiskDecision"]
    assert len(decisions) == ORDERS, "each intent decided exactly once"
    report_ids = [row.event_id for row in state.audit if row.event_type == "ExecutionReport"]
    assert len(report_ids) == len(set(report_ids)), "an execution report was recorded twice"
    for order in state.orders.values():
        assert order.filled_quantity == order.quantity
    expected = sum((D(1 + i % 4) if i % 3 else -D(1 + i % 4) for i in range(ORDERS)), D(0))
    assert state.positions[("ACC1", "XYZ")].quantity == expected


def test_retention_headroom_reports_how_close_the_limits_are_to_unrecorded_messages() -> None:
    base = dict(first_seq=1, last_seq=1000, messages=1000, stream_bytes=100_000, max_bytes=1_000_000,
                max_age_s=3600.0, now_ns=10_000 * 10**9)
    caught_up = retention(**base, durable_seq=1000, durable_ts=10_000 * 10**9)
    assert caught_up.headroom == 1.0 and caught_up.discarded_unrecorded == 0
    behind_bytes = retention(**{**base, "stream_bytes": 900_000}, durable_seq=500, durable_ts=10_000 * 10**9)
    assert behind_bytes.headroom == pytest.approx(0.55)
    behind_time = retention(**base, durable_seq=999, durable_ts=(10_000 - 2700) * 10**9)
    assert behind_time.headroom == pytest.approx(0.25)
    lost = retention(**{**base, "first_seq": 601}, durable_seq=500, durable_ts=10_000 * 10**9)
    assert lost.discarded_unrecorded == 100 and lost.headroom == 0.0
    unlimited = retention(**{**base, "max_bytes": 0, "max_age_s": 0.0}, durable_seq=0, durable_ts=0)
    assert unlimited.headroom == 1.0


async def test_recorder_counts_and_reports_stream_messages_it_never_received(bus: Bus, tmp_path: Path) -> None:
    from events import Trade, new_event_id
    from store.recorder import StreamRecorder

    trades = [Trade(id=new_event_id(), ts=1_700_000_000_000_000_000 + i, venue="SIM", symbol="XYZ", price=D("10"),
                    quantity=D("1")) for i in range(10)]
    await bus.publish_batch(trades)
    await bus.js.delete_msg("SQ_MD", 4)     # gone before the recorder read it, as a limit would discard it
    await bus.js.delete_msg("SQ_MD", 5)
    recorder = StreamRecorder(bus, "SQ_MD", tmp_path / "wal")
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    try:
        await eventually(lambda: recorder.writer is not None and (recorder.writer.durable_seq or 0) >= 10,
                         message="recorded to the end")
    finally:
        stop.set()
        await task
    assert recorder.missed == 2
    assert recorder.problems() and "2 stream messages were discarded" in recorder.problems()[0]
    assert [r.seq for r in WalReader(tmp_path / "wal" / "SQ_MD").records()] == [1, 2, 3, 6, 7, 8, 9, 10]
