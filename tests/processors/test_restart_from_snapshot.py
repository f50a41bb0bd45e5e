"""A restarted host starts from its newest valid snapshot in the broker's object store plus the WAL's tail.

Real broker, real recorder, the real aggregator core over recorded Binance data; faults are real
(bytes flipped in the stored object, a writer process SIGKILLed in the middle of its upload).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from events import Broker, Bus
from processors.host import ProcessorHost
from processors.snapshots import (
    BUCKET,
    REJECTED,
    Expected,
    InvalidSnapshot,
    SnapshotStore,
    read_header,
    state_digest,
)
from store.follow import HistoryGone, last_recorded
from store.recorder import record
from tests.conftest import REPO_ROOT, eventually
from tests.processors._recorded_run import CORES, recorded_run

AGGREGATOR = next(spec for spec in CORES if spec.name == "aggregator")
MARKET = [envelope.event for envelope in recorded_run() if envelope.subject.startswith(("sq.md.trade.",
                                                                                         "sq.md.book."))]


def _expected() -> Expected:
    return Expected(processor="aggregator", partition="0/1", state_version=1,
                    origin=state_digest(AGGREGATOR.fresh()))


async def _host(bus: Bus, wal_root: Path, *, snapshots: bool = True, every: int = 40) -> ProcessorHost[Any]:
    store = await SnapshotStore(bus, _expected()).open() if snapshots else None
    return ProcessorHost(name="aggregator", bus=bus, wal_root=wal_root, streams=("SQ_MD",),
                         state=AGGREGATOR.fresh(), decide=AGGREGATOR.decide, evolve=AGGREGATOR.evolve,
                         wanted=AGGREGATOR.wanted, snapshots=store, snapshot_every_events=every,
                         snapshot_every_s=3600)


async def _run_until(host: ProcessorHost[Any], condition: Any, message: str) -> None:
    """Run a host until `condition(host)` holds, then stop it cleanly (its snapshot writes finish)."""
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        await eventually(lambda: host.caught_up.is_set() and condition(host), message=message)
    finally:
        stop.set()
        await task


async def _recorded(bus: Bus, wal_root: Path) -> None:
    last = (await bus.js.stream_info("SQ_MD")).state.last_seq
    await eventually(lambda: last_recorded(wal_root, ["SQ_MD"])["SQ_MD"] >= last, message="WAL has the stream")


async def _rebuilt_digest(bus: Bus, wal_root: Path) -> str:
    """The state a host without snapshots reaches from the first record."""
    host = await _host(bus, wal_root, snapshots=False)
    host.state = AGGREGATOR.fresh()
    await asyncio.to_thread(host.catch_up)
    return state_digest(host.state)


@pytest.fixture
async def recorder(bus: Bus, tmp_path: Path) -> Any:
    stop = asyncio.Event()
    task = asyncio.create_task(record(bus, tmp_path / "wal", ["SQ_MD"], stop))
    yield tmp_path / "wal"
    stop.set()
    await task


async def _two_snapshots_then_more(bus: Bus, wal_root: Path) -> int:
    """Run a host over the first part of the market until it wrote at least two snapshots; publish the rest."""
    first = await _host(bus, wal_root)
    half = len(MARKET) // 2
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    try:
        await eventually(first.caught_up.is_set, message="first host following")
        for start in range(0, half, 60):
            chunk = MARKET[start:min(start + 60, half)]
            await bus.publish_batch(chunk)
            await eventually(lambda n=start + len(chunk): first.applied >= n, message="chunk applied")
        await eventually(lambda: first._generation >= 2 and first._snapshot_task is not None
                         and first._snapshot_task.done(), message="two snapshots written")
    finally:
        stop.set()
        await task
    await bus.publish_batch(MARKET[half:])
    await _recorded(bus, wal_root)
    return first._generation


async def test_restart_restores_the_newest_snapshot_and_folds_only_the_tail(bus: Bus, recorder: Path) -> None:
    generation = await _two_snapshots_then_more(bus, recorder)
    second = await _host(bus, recorder)
    await _run_until(second, lambda h: True, "restarted host caught up")
    assert second.restored_from is not None and second.restored_from.generation == generation
    assert 0 < second.applied < len(MARKET), "only the tail after the snapshot was folded in"
    assert state_digest(second.state) == await _rebuilt_digest(bus, recorder)


async def test_a_corrupt_newest_snapshot_is_skipped_and_the_older_one_gives_the_same_state(
        bus: Bus, recorder: Path) -> None:
    generation = await _two_snapshots_then_more(bus, recorder)
    store = await SnapshotStore(bus, _expected()).open()
    newest_slot = generation % 2
    blob = await store.get_raw(newest_slot)
    assert blob is not None and read_header(blob).generation == generation
    damaged = bytearray(blob)
    damaged[len(damaged) // 2] ^= 0x10
    await store.put_raw(newest_slot, bytes(damaged))
    rejected = REJECTED.labels("aggregator", "hash")._value.get()

    second = await _host(bus, recorder)
    await _run_until(second, lambda h: True, "restarted host caught up")
    assert REJECTED.labels("aggregator", "hash")._value.get() == rejected + 1
    assert second.restored_from is not None and second.restored_from.generation == generation - 1
    assert state_digest(second.state) == await _rebuilt_digest(bus, recorder)


async def test_with_no_usable_snapshot_the_host_rebuilds_from_the_first_record(bus: Bus, recorder: Path) -> None:
    await _two_snapshots_then_more(bus, recorder)
    store = await SnapshotStore(bus, _expected()).open()
    for slot in (0, 1):
        await store.put_raw(slot, b"SQSNAP\x00\x01 not a snapshot at all, just bytes of the right magic")
    second = await _host(bus, recorder)
    await _run_until(second, lambda h: True, "restarted host caught up")
    assert second.restored_from is None
    assert second.applied == len(MARKET)
    assert state_digest(second.state) == await _rebuilt_digest(bus, recorder)


_WRITER = """
import asyncio, os, sys
from events import Bus
from processors.snapshots import Expected, SnapshotHeader, SnapshotStore, FORMAT_VERSION, seal

async def main():
    bus = await Bus.connect(sys.argv[1])
    expected = Expected(processor="aggregator", partition="0/1", state_version=1, origin=sys.argv[2])
    store = await SnapshotStore(bus, expected).open()
    header = SnapshotHeader(format=FORMAT_VERSION, processor="aggregator", partition="0/1", state_version=1,
                            origin=sys.argv[2], positions={"SQ_MD": 1}, generation=int(sys.argv[3]),
                            last_stored_ts=0, events=1)
    blob = seal(header, os.urandom(48 << 20))      # incompressible: hundreds of chunks to upload
    print("uploading", flush=True)
    await store.save(header, blob)
    print("done", flush=True)

asyncio.run(main())
"""


async def test_sigkill_while_a_snapshot_is_written_leaves_the_previous_one_usable(
        bus: Bus, broker: Broker, recorder: Path) -> None:
    generation = await _two_snapshots_then_more(bus, recorder)
    objects = f"OBJ_{BUCKET}"
    before = (await bus.js.stream_info(objects)).state.messages
    # The next generation overwrites the older slot, the one a restart would fall back to.
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, broker.url, _expected().origin, str(generation + 1)],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "uploading"

        async def chunks_arriving() -> bool:
            return int((await bus.js.stream_info(objects)).state.messages) > before + 20

        await eventually(chunks_arriving, message="the writer is uploading chunks")
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    second = await _host(bus, recorder)
    await _run_until(second, lambda h: True, "restarted host caught up")
    assert second.restored_from is not None and second.restored_from.generation == generation
    assert state_digest(second.state) == await _rebuilt_digest(bus, recorder)


async def test_without_a_wal_a_snapshot_older_than_the_stream_stops_with_what_to_run(
        bus: Bus, recorder: Path, tmp_path: Path) -> None:
    await _two_snapshots_then_more(bus, recorder)
    # The broker's limits discarded the head of the stream; this host has no WAL volume.
    last = (await bus.js.stream_info("SQ_MD")).state.last_seq
    await bus.js.purge_stream("SQ_MD", keep=5)
    host = await _host(bus, tmp_path / "no-wal-here")
    with pytest.raises(HistoryGone) as gone:
        await host.run(asyncio.Event())
    assert gone.value.stream == "SQ_MD" and gone.value.first_held == last - 4
    assert "--data-dir" in str(gone.value) and "sq store restore" in str(gone.value)


async def test_a_slot_overwritten_while_it_is_read_is_read_again_not_waited_on_forever(bus: Bus) -> None:
    # nats-py reads the chunks of the version it looked up; a put in between purges them, and its read would
    # wait for them forever (a test reading snapshots while a processor writes them hung so).
    writer = await SnapshotStore(bus, _expected()).open()
    reader = await SnapshotStore(bus, _expected(), read_timeout_s=1.0).open()
    blobs = [bytes([n]) * (600_000 + n) for n in range(40)]
    stop = asyncio.Event()

    async def overwrite() -> None:
        n = 0
        while not stop.is_set():
            await writer.put_raw(0, blobs[n % len(blobs)])
            n += 1

    await writer.put_raw(0, blobs[0])
    task = asyncio.create_task(overwrite())
    try:
        for _ in range(30):
            try:
                read = await asyncio.wait_for(reader.get_raw(0), 30)
            except InvalidSnapshot:
                continue                 # replaced three times in a row while read: refused, not hung
            assert read in blobs
    finally:
        stop.set()
        await task
