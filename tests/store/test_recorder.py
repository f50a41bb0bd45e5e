"""The recorder over a real broker: every stream message lands in the WAL once, in order, across SIGKILLs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from events import Broker, Bus, Trade, new_event_id
from store.reader import WalReader
from store.recorder import StreamRecorder, event_type_of
from tests.conftest import REPO_ROOT, eventually


def _trade(i: int) -> Trade:
    return Trade(id=new_event_id(), ts=1_700_000_000_000_000_000 + i, venue="SIM", symbol="BTCUSDT",
                 price=Decimal("100.5"), quantity=Decimal(i + 1), trade_id=str(i))


async def _stream_messages(bus: Bus, stream: str) -> list[tuple[int, str, bytes]]:
    info = await bus.js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await bus.js.get_msg(stream, seq)
        found.append((seq, message.subject, bytes(message.data or b"")))
    return found


def _wal_messages(directory: Path) -> list[tuple[int, str, bytes]]:
    if not directory.exists():
        return []
    return [(r.seq, r.subject, bytes(r.payload)) for r in WalReader(directory).records()]


def test_type_tag_is_read_without_decoding_and_garbage_has_none() -> None:
    assert event_type_of(b'{"type":"Trade","id":"x"}') == "Trade"
    assert event_type_of(b"\xff garbage") == "" and event_type_of(b'{"account":"A"}') == ""


async def test_recorder_writes_every_message_with_its_stream_sequence_and_publishes_watermarks(
        bus: Bus, tmp_path: Path) -> None:
    await bus.publish_batch([_trade(i) for i in range(500)])
    await bus.js.publish("sq.md.trade.SIM.BTCUSDT", b"not json at all")  # recorded as it came
    watermarks: list[int] = []

    async def on_mark(msg) -> None:  # type: ignore[no-untyped-def]
        watermarks.append(json.loads(msg.data)["seq"])

    await bus.nc.subscribe("sq.wal.watermark.SQ_MD", cb=on_mark)
    stop = asyncio.Event()
    recorder = StreamRecorder(bus, "SQ_MD", tmp_path / "wal")
    task = asyncio.create_task(recorder.run(stop))
    await eventually(lambda: bool(watermarks) and watermarks[-1] == 501, message="watermark reaches 501")
    await bus.publish_batch([_trade(i) for i in range(500, 600)])
    await eventually(lambda: watermarks[-1] == 601, message="live messages recorded")
    stop.set()
    await task
    assert watermarks == sorted(watermarks)
    wal = _wal_messages(tmp_path / "wal" / "SQ_MD")
    assert wal == await _stream_messages(bus, "SQ_MD")
    record = next(WalReader(tmp_path / "wal" / "SQ_MD").records(start_seq=3, end_seq=3))
    assert record.type == "Trade" and record.ts > 1_700_000_000_000_000_000


async def test_recorder_sigkilled_twice_while_events_flow_records_each_exactly_once_in_order(
        broker: Broker, bus: Bus, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "gateway.cli", "processor", "recorder", "--nats-url", broker.url,
               "--data-dir", str(tmp_path), "--port", "0", "--streams", "SQ_MD"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    published = 0
    stop_publishing = asyncio.Event()

    async def publish() -> None:
        nonlocal published
        while not stop_publishing.is_set():
            await bus.publish_batch([_trade(published + i) for i in range(50)])
            published += 50
            await asyncio.sleep(0.005)

    wal_dir = tmp_path / "wal" / "SQ_MD"
    publisher = asyncio.create_task(publish())
    process = start()
    try:
        for kill in range(2):
            target = (kill + 1) * 1_500
            await eventually(lambda t=target: len(_wal_messages(wal_dir)) >= t, timeout=60,
                             message=f"recorder reaches {target} records")
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = start()
        stop_publishing.set()
        await publisher
        expected = await _stream_messages(bus, "SQ_MD")
        await eventually(lambda: len(_wal_messages(wal_dir)) >= len(expected), timeout=60,
                         message="recorder catches up after the last restart")
        wal = _wal_messages(wal_dir)
        assert [seq for seq, _, _ in wal] == list(range(1, published + 1))
        assert wal == expected
    finally:
        stop_publishing.set()
        process.terminate()
        process.wait(timeout=10)


async def test_recorder_seals_on_a_clock_so_backups_see_recent_history(bus: Bus, tmp_path: Path) -> None:
    stop = asyncio.Event()
    recorder = StreamRecorder(bus, "SQ_MD", tmp_path / "wal", seal_every_s=0.0)
    task = asyncio.create_task(recorder.run(stop))
    for start in (0, 10, 20):
        await bus.publish_batch([_trade(i) for i in range(start, start + 10)])
        await eventually(lambda end=start + 10: len(_wal_messages(tmp_path / "wal" / "SQ_MD")) == end,
                         message="recorded")
    stop.set()
    await task
    segments = WalReader(tmp_path / "wal" / "SQ_MD").layout().segments
    assert len(segments) >= 2 and all(info.seal is not None for info in segments[:-1])
    assert [seq for seq, _, _ in _wal_messages(tmp_path / "wal" / "SQ_MD")] == list(range(1, 31))
