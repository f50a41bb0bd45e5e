"""The WAL's contract: durable appends read back exactly, in order, by range, filter and batch."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pyarrow as pa
import pytest

from store import (
    AsyncWalAppender,
    Entry,
    WalLockedError,
    WalModeError,
    WalReader,
    WalRecordError,
    WalSequenceError,
    WalWriter,
)
from store._files import OsFile
from store.index import index_path
from tests.store._helpers import SUBJECT, entries_for, payload_for, read_all


def write_log(directory: Path, count: int, *, segment_size: int = 4096, batch: int = 7) -> None:
    """A contiguous log of `count` records (several sealed segments at this segment size)."""
    with WalWriter.open(directory, contiguous=True, segment_size=segment_size) as writer:
        for start in range(1, count + 1, batch):
            writer.append_batch(entries_for(range(start, min(start + batch, count + 1))))


def test_append_returns_sequences_and_reopen_reads_them_back(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        assert writer.append(b"first", ts=5, subject="sq.a.b", type="T") == 1
        assert writer.append_batch([Entry(b"second", 6), Entry(b"", 7)]) == [2, 3]
        assert writer.durable_seq == 3
    with WalWriter.open(tmp_path) as writer:
        assert writer.recovery.clean and writer.last_seq == 3 and writer.contiguous
        assert writer.append(b"fourth", ts=8) == 4
    records = list(WalReader(tmp_path).records())
    assert [(r.seq, r.ts, r.subject, r.type, bytes(r.payload)) for r in records] == [
        (1, 5, "sq.a.b", "T", b"first"), (2, 6, "", "", b"second"), (3, 7, "", "", b""), (4, 8, "", "", b"fourth")]


def test_segments_roll_by_size_and_chain_across_reopen(tmp_path: Path) -> None:
    write_log(tmp_path, 300)
    write_log(tmp_path, 0)
    with WalWriter.open(tmp_path, segment_size=4096) as writer:
        writer.append_batch(entries_for(range(301, 321)))
    names = sorted(path.name for path in tmp_path.glob("*.wal"))
    assert len(names) > 3 and names[0] == "00000000000000000001.wal"
    report = WalReader(tmp_path).verify()
    assert report.records == 320 and report.last_seq == 320 and report.sealed == report.segments - 1
    assert [seq for seq, _ in read_all(tmp_path)] == list(range(1, 321))


def test_contiguous_log_refuses_a_sequence_that_is_not_the_next(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append_batch(entries_for(range(1, 4)))
        with pytest.raises(WalSequenceError) as caught:
            writer.append(b"x", ts=1, seq=5)
        assert (caught.value.seq, caught.value.last_seq, caught.value.contiguous) == (5, 3, True)
        assert writer.last_seq == 3


def test_increasing_log_accepts_gaps_but_refuses_going_back(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path) as writer:
        assert writer.append_batch([Entry(b"a", 1, seq=10), Entry(b"b", 2, seq=15)]) == [10, 15]
        with pytest.raises(WalSequenceError):
            writer.append(b"c", ts=3, seq=15)
        assert writer.append(b"d", ts=4) == 16
    assert [r.seq for r in WalReader(tmp_path).records()] == [10, 15, 16]


def test_bad_entry_refuses_the_whole_batch_and_writes_nothing(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append(b"ok", ts=1)
        size = sum(path.stat().st_size for path in tmp_path.glob("*.wal"))
        for bad, field in ((Entry(b"x", 2**63), "ts"), (Entry("text", 1), "payload"),  # type: ignore[arg-type]
                           (Entry(b"x", 1, type="T" * 300), "type"), (Entry(b"x" * (17 << 20), 1), "payload")):
            with pytest.raises(WalRecordError) as caught:
                writer.append_batch([Entry(b"fine", 1), bad])
            assert (caught.value.index, caught.value.field) == (1, field)
        assert writer.last_seq == 1
        assert sum(path.stat().st_size for path in tmp_path.glob("*.wal")) == size


def test_opening_with_the_other_sequence_mode_fails(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append(b"x", ts=1)
    with pytest.raises(WalModeError) as caught:
        WalWriter.open(tmp_path, contiguous=False)
    assert (caught.value.requested, caught.value.found) == (False, True)


def test_second_writer_on_the_same_directory_fails_clearly(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path):
        with pytest.raises(WalLockedError) as caught:
            WalWriter.open(tmp_path)
        assert caught.value.directory == tmp_path and str(os.getpid()) in caught.value.holder
    WalWriter.open(tmp_path).close()


def test_reader_filters_by_sequence_time_type_and_subject_wildcards(tmp_path: Path) -> None:
    subjects = ["sq.md.trade.BINANCE.BTCUSDT", "sq.md.trade.KITE.INFY", "sq.ord.intent.ACC1", "sq.md.book.KITE.INFY"]
    with WalWriter.open(tmp_path, contiguous=True, segment_size=2048) as writer:
        for seq in range(1, 201):
            writer.append(payload_for(seq), ts=seq * 10, subject=subjects[seq % 4], type=["Trade", "Book"][seq % 2])
    reader = WalReader(tmp_path)
    assert [r.seq for r in reader.records(start_seq=50, end_seq=60)] == list(range(50, 61))
    assert [r.seq for r in reader.records(start_ts=995, end_ts=1030)] == [100, 101, 102]
    trades = [r.seq for r in reader.records(types=["Trade"], subject="sq.md.trade.*.*")]
    assert trades == [seq for seq in range(1, 201) if seq % 2 == 0 and seq % 4 in (0, 1)]
    assert [r.seq for r in reader.records(subject="sq.md.>", start_seq=190)] == [
        seq for seq in range(190, 201) if seq % 4 != 2]
    assert [r.seq for r in reader.records(subject="sq.*.intent.ACC1", end_seq=12)] == [2, 6, 10]
    table = pa.Table.from_batches(list(reader.batches(subject="sq.md.>", types=["Book"], start_ts=500,
                                                      end_ts=1500, batch_size=16)))
    expected = [r for r in reader.records(subject="sq.md.>", types=["Book"], start_ts=500, end_ts=1500)]
    assert table.column("seq").to_pylist() == [r.seq for r in expected]
    assert table.column("subject").to_pylist() == [r.subject for r in expected]


def test_arrow_batches_hold_exactly_the_records(tmp_path: Path) -> None:
    write_log(tmp_path, 500)
    with WalWriter.open(tmp_path) as writer:  # plus an unsealed tail, read record by record
        writer.append_batch(entries_for(range(501, 520)))
    reader = WalReader(tmp_path)
    for views in (True, False):
        table = pa.Table.from_batches(list(reader.batches(batch_size=64, views=views)))
        table.validate(full=True)
        assert table.column("seq").to_pylist() == list(range(1, 520))
        assert table.column("payload").to_pylist() == [payload_for(seq) for seq in range(1, 520)]
        assert set(table.column("subject").to_pylist()) == {SUBJECT}
        assert set(table.column("type").to_pylist()) == {"OrderIntent"}
    window = pa.Table.from_batches(list(reader.batches(start_seq=123, end_seq=321)))
    assert window.column("seq").to_pylist() == list(range(123, 322))


def test_payload_views_are_zero_copy_into_the_segment(tmp_path: Path) -> None:
    write_log(tmp_path, 3)
    record = next(WalReader(tmp_path).records())
    assert isinstance(record.payload, memoryview) and record.payload.readonly
    raw = record.segment.read_bytes()
    start = record.offset + 44 + len(record.subject) + len(record.type)
    assert raw[start:start + record.payload.nbytes] == bytes(record.payload)


@pytest.mark.parametrize("damage", ["delete", "corrupt", "stale"])
def test_deleted_or_corrupted_index_is_rebuilt_identical(tmp_path: Path, damage: str) -> None:
    write_log(tmp_path, 400)
    sealed = sorted(tmp_path.glob("*.wal"))[1]
    idx = index_path(sealed)
    original = idx.read_bytes()
    if damage == "delete":
        idx.unlink()
    elif damage == "corrupt":
        idx.write_bytes(original[:40] + bytes([original[40] ^ 0x10]) + original[41:])
    else:
        idx.write_bytes(index_path(sorted(tmp_path.glob("*.wal"))[2]).read_bytes())
    reader = WalReader(tmp_path)
    first = int(sealed.name[:20])
    assert [r.seq for r in reader.records(start_seq=first + 3, end_seq=first + 5)] == [first + 3, first + 4, first + 5]
    assert idx.read_bytes() == original


def test_async_appender_groups_concurrent_appends_into_few_fsyncs(tmp_path: Path) -> None:
    syncs = []

    class CountingFile(OsFile):
        def sync(self) -> None:
            syncs.append(1)
            super().sync()

    async def scenario() -> list[int]:
        writer = WalWriter.open(tmp_path, contiguous=True, opener=CountingFile)
        async with AsyncWalAppender(writer, max_delay=0.005) as appender:
            async def one(i: int) -> int:
                seq = await appender.append(payload_for(i), ts=i, subject=SUBJECT, type="T")
                assert writer.durable_seq is not None and writer.durable_seq >= seq
                return seq
            seqs = await asyncio.gather(*(one(i) for i in range(1, 401)))
        writer.close()
        return list(seqs)

    seqs = asyncio.run(scenario())
    assert sorted(seqs) == list(range(1, 401))
    assert len(syncs) < 100, f"{len(syncs)} fsyncs for 400 concurrent appends: group commit is not grouping"
    assert len(read_all(tmp_path)) == 400


def test_async_appender_fails_only_the_bad_entry(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[object], WalWriter]:
        writer = WalWriter.open(tmp_path, contiguous=True)
        async with AsyncWalAppender(writer) as appender:
            results = await asyncio.gather(appender.append(b"a", ts=1), appender.append(b"b", ts=2**64),
                                           appender.append(b"c", ts=3), return_exceptions=True)
        writer.close()
        return results, writer

    results, _ = asyncio.run(scenario())
    assert results[0] == 1 and results[2] == 2 and isinstance(results[1], WalRecordError)
