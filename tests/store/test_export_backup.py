"""Parquet export read back with DuckDB, and backup/restore round trips with damage in the backup detected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from store import WalReader, WalWriter
from store.backup import MANIFEST, BackupError, RestoreRefused, backup, restore, verify_backup
from store.cli import main
from store.export import export
from store.replay import replay
from tests.store._history import ORDER1, write_history


@pytest.fixture
def history(tmp_path: Path) -> Path:
    root = tmp_path / "wal"
    write_history(root)
    return root


def all_records(root: Path) -> list[tuple[str, int, int, str, str, bytes]]:
    return [(r.stream, r.seq, r.ts, r.subject, r.type, bytes(r.payload)) for r in replay(root)]


def test_export_partitions_by_utc_day_and_type_and_duckdb_reads_it_back(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    report = export(history, out)
    assert report.records == 11 and not report.unsealed
    assert (out / "date=2024-03-02" / "type=Trade" / "part-SQ_MD-00000000000000000004.parquet").exists()
    rows = duckdb.sql(f"""
        SELECT stream, seq, ts, subject, coalesce(type, ''), payload, strftime(date, '%Y-%m-%d'), correlation_id
        FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) ORDER BY ts""").fetchall()
    assert [row[:6] for row in rows] == [(s, q, t, sub, typ, p) for s, q, t, sub, typ, p in all_records(history)]
    by_day = {(row[6], row[4]) for row in rows}
    assert ("2024-03-01", "OrderIntent") in by_day and ("2024-03-02", "Trade") in by_day
    assert [row[7] for row in rows if row[4] == "RiskDecision"][0] == ORDER1
    assert ds.dataset(out, format="parquet", partitioning="hive").count_rows() == 11  # pyarrow (pandas' engine)


def test_export_is_idempotent_and_picks_up_newly_sealed_segments(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    first = export(history, out)
    assert export(history, out).exported == [] and len(export(history, out).skipped) == len(first.exported)
    with WalWriter.open(history / "SQ_MD") as writer:
        writer.append(b'{"type":"Trade"}', ts=1_709_400_000_000_000_000, subject="sq.md.trade.X.Y", type="Trade", seq=9)
        assert export(history, out).unsealed == ["SQ_MD/00000000000000000009.wal"]
        writer.seal()
    assert export(history, out).exported == ["SQ_MD/00000000000000000009.wal"]
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)")
    assert count.fetchall() == [(12,)]


def test_backup_restore_round_trip_is_verified_and_incremental(history: Path, tmp_path: Path) -> None:
    dest, restored = tmp_path / "backup", tmp_path / "restored"
    first = backup(history, dest)
    assert len(first.copied) == 4 and not first.skipped
    manifest = json.loads((dest / MANIFEST).read_text())
    assert {entry["name"] for entry in manifest["streams"]["SQ_MD"]} == {"00000000000000000001.wal",
                                                                         "00000000000000000004.wal"}
    assert backup(history, dest).copied == []  # nothing new: every copy still hashes right
    report = restore(dest, restored)
    assert report.records == 11 and set(report.streams) == {"SQ_MD", "SQ_TRADING"}
    assert all_records(restored) == all_records(history)
    for stream in ("SQ_MD", "SQ_TRADING"):
        assert WalReader(restored / stream).verify().chain_hash == WalReader(history / stream).verify().chain_hash
    with WalWriter.open(restored / "SQ_MD") as writer:  # the recorder can carry on from a restored log
        assert writer.last_seq == 6 and writer.append(b"{}", ts=1, seq=7) == 7


def test_corrupted_backup_file_is_detected_refused_by_restore_and_healed_by_the_next_backup(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "backup"
    backup(history, dest)
    damaged = dest / "SQ_TRADING" / "00000000000000000001.wal"
    data = bytearray(damaged.read_bytes())
    data[200] ^= 0x01
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="SHA-256") as caught:
        verify_backup(dest)
    assert caught.value.path == damaged
    assert main(["store", "restore", str(dest), str(tmp_path / "restored")]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    assert not (tmp_path / "restored" / "SQ_TRADING").exists()
    assert main(["store", "verify", str(dest)]) == 1
    assert str(damaged) in json.loads(capsys.readouterr().out)["file"]
    assert backup(history, dest).copied == ["SQ_TRADING/00000000000000000001.wal"]
    assert set(verify_backup(dest)) == {"SQ_MD", "SQ_TRADING"}


def test_restore_refuses_a_non_empty_target_unless_forced_then_moves_it_aside(history: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup(history, dest)
    target = tmp_path / "live"
    with WalWriter.open(target / "SQ_MD") as writer:
        writer.append(b"newer history", ts=1, seq=50)
    with pytest.raises(RestoreRefused):
        restore(dest, target)
    assert [r.seq for r in WalReader(target / "SQ_MD").records()] == [50]
    report = restore(dest, target, force=True)
    assert len(report.moved_aside) == 1 and [r.seq for r in WalReader(report.moved_aside[0]).records()] == [50]
    assert all_records(target) == all_records(history)
    assert main(["store", "verify", str(target)]) == 0


def test_store_verify_names_the_damaged_segment_and_offset(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "verify", str(history)]) == 0
    assert json.loads(capsys.readouterr().out)["streams"]["SQ_MD"]["records"] == 6
    segment = history / "SQ_MD" / "00000000000000000004.wal"
    with open(segment, "r+b") as handle:
        handle.seek(130)
        byte = handle.read(1)
        handle.seek(130)
        handle.write(bytes([byte[0] ^ 0x40]))
        os.fsync(handle.fileno())
    assert main(["store", "verify", str(history)]) == 1
    failure = json.loads(capsys.readouterr().out)
    assert failure["segment"].endswith(segment.name) and failure["offset"] == 80
