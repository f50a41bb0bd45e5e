"""WAL benchmarks: durable append throughput beside raw write+fdatasync, verify, and CRC32C speed."""

from __future__ import annotations

import os
import tempfile
import time
import zlib
from pathlib import Path

from crc32c import crc32c

from store import Entry, WalReader, WalWriter
from tests.bench.harness import BenchResult, best_of, result

SUBJECT = "sq.md.trade.BINANCE.BTCUSDT"
TOTAL_BYTES = 48 << 20


def _entries(payload_size: int, count: int) -> list[Entry]:
    payload = os.urandom(payload_size // 2).hex().encode()
    return [Entry(payload, 1_700_000_000_000_000_000 + i, SUBJECT, "Trade") for i in range(count)]


def _wal_append(directory: Path, batches: list[list[Entry]]) -> tuple[float, int]:
    """Seconds to append every batch durably (one write + one fdatasync each), and bytes written."""
    with WalWriter.open(directory, contiguous=True, segment_size=256 << 20) as writer:
        start = time.perf_counter()
        for batch in batches:
            writer.append_batch(batch)
        elapsed = time.perf_counter() - start
    return elapsed, sum(path.stat().st_size for path in directory.glob("*.wal"))


def _raw_append(path: Path, chunk: bytes, count: int) -> float:
    """Seconds to append the same bytes in the same batch sizes with os.write + os.fdatasync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, chunk)
            os.fdatasync(fd)
        return time.perf_counter() - start
    finally:
        os.close(fd)


def _append_rows(name: str, payload_size: int, batch_records: int, root: Path) -> list[BenchResult]:
    record_size = payload_size + 44 + len(SUBJECT) + len("Trade")
    batch_count = max(TOTAL_BYTES // (record_size * batch_records), 8)
    batches = [_entries(payload_size, batch_records) for _ in range(batch_count)]
    records = batch_count * batch_records
    wal_rates, raw_rates = [], []
    for attempt in range(3):
        elapsed, size = _wal_append(root / f"{name}-{attempt}", batches)
        wal_rates.append((size / elapsed, records / elapsed))
        chunk = os.urandom(size // batch_count)
        raw = _raw_append(root / f"{name}-raw-{attempt}", chunk, batch_count)
        raw_rates.append((len(chunk) * batch_count / raw, records / raw))
    wal_mb, wal_rec = max(wal_rates)
    raw_mb, raw_rec = max(raw_rates)
    baseline = f"raw os.write+fdatasync of the same bytes, {batch_records} records ({record_size} B) per batch"
    return [
        result(name, wal_mb / 1e6, "MB/s", baseline=baseline, baseline_value=raw_mb / 1e6, better="higher"),
        result(f"{name}_records", wal_rec, "records/s", baseline=baseline, baseline_value=raw_rec, better="higher"),
    ]


def _verify_rows(root: Path) -> list[BenchResult]:
    directory = root / "verify"
    with WalWriter.open(directory, contiguous=True, segment_size=64 << 20) as writer:
        for _ in range(32):
            writer.append_batch(_entries(4096, 1024))
    files = sorted(directory.glob("*.wal"))
    size = sum(path.stat().st_size for path in files)
    reader = WalReader(directory, persist_index=False)

    def verify() -> float:
        start = time.perf_counter()
        reader.verify()
        return size / (time.perf_counter() - start)

    def read_and_crc() -> float:
        start = time.perf_counter()
        for path in files:
            crc32c(path.read_bytes())
        return size / (time.perf_counter() - start)

    return [result("wal_verify", best_of(3, verify) / 1e9, "GB/s",
                   baseline="plain read + crc32c of the same segment files (4 KiB records, page cache warm)",
                   baseline_value=best_of(3, read_and_crc) / 1e9, better="higher")]


def _crc_rows() -> list[BenchResult]:
    data = os.urandom(64 << 20)

    def timed(function: object) -> float:
        def run() -> float:
            start = time.perf_counter()
            function(data)  # type: ignore[operator]
            return len(data) / (time.perf_counter() - start)
        return best_of(3, run) / 1e9

    return [result("crc32c", timed(crc32c), "GB/s", baseline="zlib.crc32 over the same 64 MiB",
                   baseline_value=timed(zlib.crc32), better="higher")]


def run() -> list[BenchResult]:
    """All WAL benchmark rows, each beside its baseline measured in the same run on the same disk."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("SQ_BENCH_DIR")) as name:
        root = Path(name)
        rows = _append_rows("wal_append_200b", 200, 1024, root)
        rows += _append_rows("wal_append_4k", 4096, 64, root)
        rows += _verify_rows(root)
    return rows + _crc_rows()
