"""Property tests: whatever is appended reads back identically, across reopen, rolls and torn tails."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import Entry, WalReader, WalWriter

records = st.lists(
    st.tuples(st.binary(max_size=300), st.integers(-(2**63), 2**63 - 1),
              st.sampled_from(["", "sq.md.trade.X.Y", "sq.ord.intent.ACC1"]), st.sampled_from(["", "Trade", "Bar"])),
    min_size=1, max_size=60)
splits = st.lists(st.integers(1, 20), min_size=1, max_size=20)
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def batches_of(items: list, sizes: list[int]) -> list[list]:
    """Cut `items` into consecutive batches of the given sizes (cycling)."""
    out, position, index = [], 0, 0
    while position < len(items):
        size = sizes[index % len(sizes)]
        out.append(items[position:position + size])
        position += size
        index += 1
    return out


@fast
@given(records, splits, st.sampled_from([300, 1024, 1 << 20]))
def test_appended_records_read_back_identically_after_reopen(items: list, sizes: list[int], segment: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            with WalWriter.open(directory, contiguous=True, segment_size=segment) as writer:
                for batch in batches_of(part, sizes):
                    writer.append_batch([Entry(payload, ts, subject, kind) for payload, ts, subject, kind in batch])
        reader = WalReader(directory)
        got = [(bytes(r.payload), r.ts, r.subject, r.type) for r in reader.records()]
        assert got == [tuple(item) for item in items]
        assert [r.seq for r in reader.records()] == list(range(1, len(items) + 1))
        table = pa.Table.from_batches(list(reader.batches(batch_size=7)), schema=None) if items else None
        assert table is not None and table.column("payload").to_pylist() == [item[0] for item in items]
        assert reader.verify().records == len(items)


@fast
@given(records, st.data())
def test_any_truncation_recovers_a_prefix_and_accepts_the_next_append(items: list, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        with WalWriter.open(directory, contiguous=True) as writer:
            for payload, ts, subject, kind in items:
                writer.append(payload, ts=ts, subject=subject, type=kind)
        segment = sorted(directory.glob("*.wal"))[-1]
        raw = segment.read_bytes()
        segment.write_bytes(raw[: data.draw(st.integers(80, len(raw)))])
        with WalWriter.open(directory) as writer:
            kept = writer.last_seq or 0
            writer.append(b"next", ts=0)
        got = [(bytes(r.payload), r.ts, r.subject, r.type) for r in WalReader(directory).records()]
        assert got[:kept] == [tuple(item) for item in items[:kept]]
        assert got[kept:] == [(b"next", 0, "", "")]
