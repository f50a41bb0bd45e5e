"""Replay benchmark: events/s from the WAL into Arrow record batches, beside reading the same rows from Parquet."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from store import Entry, WalReader, WalWriter
from tests.bench.harness import BenchResult, best_of, result

EVENTS = 1_000_000
SUBJECTS = ["sq.md.trade.BINANCE.BTCUSDT", "sq.md.trade.BINANCE.ETHUSDT", "sq.md.trade.KITE.INFY"]


def _write_log(directory: Path) -> None:
    """1M events of ~200-byte JSON-like payloads, in 64 MiB segments (all but the tail sealed)."""
    body = os.urandom(90).hex().encode()
    with WalWriter.open(directory, contiguous=True) as writer:
        for start in range(0, EVENTS, 20_000):
            writer.append_batch([Entry(b'{"i":%d,"p":"%s"}' % (i, body), 1_700_000_000_000_000_000 + i,
                                       SUBJECTS[i % 3], "Trade") for i in range(start, start + 20_000)])


def run() -> list[BenchResult]:
    """Replay rate into Arrow batches, beside pyarrow reading the same 1M rows from a Parquet file."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("SQ_BENCH_DIR")) as name:
        root = Path(name)
        _write_log(root / "wal")
        reader = WalReader(root / "wal")
        table = pa.Table.from_batches(list(reader.batches(views=False)))
        assert table.num_rows == EVENTS
        parquet = root / "events.parquet"
        pq.write_table(table, parquet)
        del table

        def replay() -> float:
            start = time.perf_counter()
            rows = sum(batch.num_rows for batch in WalReader(root / "wal").batches())
            return rows / (time.perf_counter() - start)

        def parquet_read() -> float:
            start = time.perf_counter()
            rows = pq.read_table(parquet).num_rows
            return rows / (time.perf_counter() - start)

        value = best_of(3, replay)
        baseline = best_of(3, parquet_read)
    return [result("replay_events", value, "events/s", better="higher", baseline_value=baseline,
                   baseline="pyarrow.parquet.read_table of the same 1M rows (seq, ts, subject, type, payload)")]
