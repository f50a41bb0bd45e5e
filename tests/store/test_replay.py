"""Replay: filters, JSONL and Parquet output, the callback path, and republishing into a real broker."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from events import Broker, Bus
from events.ids import derived_id
from events.trading import OrderIntent
from store import Entry, WalReader, WalWriter
from store.cli import main
from store.replay import ReplayFilter, RepublishError, drive, replay, republish, write_jsonl
from tests.conftest import eventually
from tests.store._history import DAY1, HOUR, ORDER1, ORDER2, write_history

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(tmp_path: Path) -> Path:
    root = tmp_path / "wal"
    write_history(root)
    return root


def keys(records: object) -> list[tuple[str, int]]:
    return [(record.stream, record.seq) for record in records]  # type: ignore[attr-defined]


def test_replay_merges_streams_by_record_time_and_keeps_exact_payloads(history: Path) -> None:
    records = list(replay(history))
    assert [record.ts for record in records] == sorted(record.ts for record in records)
    assert len(records) == 11 and keys(records)[:4] == [("SQ_TRADING", 1), ("SQ_TRADING", 2), ("SQ_TRADING", 3),
                                                        ("SQ_MD", 1)]
    wal = {record.seq: bytes(record.payload) for record in WalReader(history / "SQ_TRADING").records()}
    assert all(bytes(r.payload) == wal[r.seq] for r in records if r.stream == "SQ_TRADING")


def test_replay_filters_by_time_range_subject_type_and_stream(history: Path) -> None:
    day2 = ReplayFilter(start_ts=DAY1 + 24 * HOUR, end_ts=DAY1 + 29 * HOUR)
    assert keys(replay(history, where=day2)) == [("SQ_MD", 5), ("SQ_TRADING", 5), ("SQ_TRADING", 6)]
    eth = ReplayFilter(subject="sq.md.trade.*.ETHUSDT")
    assert keys(replay(history, where=eth)) == [("SQ_MD", 2), ("SQ_MD", 4), ("SQ_MD", 6)]
    intents = ReplayFilter(types=frozenset({"OrderIntent"}), subject="sq.ord.>")
    assert keys(replay(history, streams=["SQ_TRADING"], where=intents)) == [("SQ_TRADING", 1), ("SQ_TRADING", 3)]
    with pytest.raises(FileNotFoundError, match="SQ_NONE"):
        list(replay(history, streams=["SQ_NONE"]))


def test_correlation_filter_yields_the_order_intent_and_everything_it_caused(history: Path) -> None:
    assert keys(replay(history, where=ReplayFilter(correlation_id=ORDER1))) == [("SQ_TRADING", 1), ("SQ_TRADING", 2)]
    # The second intent was published without an id: it matches by the id the intake derives.
    assert keys(replay(history, where=ReplayFilter(correlation_id=ORDER2))) == [("SQ_TRADING", 3), ("SQ_TRADING", 5)]
    assert list(replay(history, where=ReplayFilter(correlation_id="no-such-order"))) == []


def test_drive_calls_back_in_order_with_events_decoded_like_the_live_path(history: Path) -> None:
    seen = []
    count = drive(replay(history, streams=["SQ_TRADING"], where=ReplayFilter(subject="sq.ord.intent.ACC2")),
                  lambda record: seen.append(record.decode()))
    assert count == 1 and isinstance(seen[0], OrderIntent)
    assert seen[0].id == ORDER2 and seen[0].ts == DAY1 + 3 * HOUR  # completed from the record time


def test_jsonl_has_one_object_per_event_and_keeps_undecodable_bytes_as_text(history: Path) -> None:
    out = io.BytesIO()
    assert write_jsonl(replay(history, streams=["SQ_TRADING"]), out) == 5
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0]["stream"] == "SQ_TRADING" and rows[0]["seq"] == 1 and rows[0]["type"] == "OrderIntent"
    assert rows[0]["event"]["id"] == ORDER1 and rows[0]["event"]["quantity"] == "0.5"
    assert rows[-1]["event"] is None and rows[-1]["raw"] == "not json at all" and rows[-1]["type"] == ""


def test_cli_replay_writes_parquet_with_correlation_ids(history: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    assert main(["replay", "--wal-root", str(history), "--type", "RiskDecision", "--from-ts", "2024-03-01T00:00:00Z",
                 "--format", "parquet", "--out", str(target)]) == 0
    table = pq.read_table(target)
    assert table.column_names == ["stream", "seq", "ts", "subject", "type", "payload", "correlation_id"]
    assert table.column("seq").to_pylist() == [2, 5]
    assert table.column("correlation_id").to_pylist() == [ORDER1, ORDER2]


def test_cli_replay_jsonl_to_stdout_in_a_subprocess(history: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "store.cli", "replay", "--wal-root", str(history), "--correlation-id",
                           ORDER1, "--progress"], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["seq"] for line in done.stdout.splitlines()] == [1, 2]
    assert b"replay: 2 records" in done.stderr


# -- republish into a real broker ----------------------------------------------------------------------------


def contiguous_log(directory: Path, first: int, count: int) -> list[Entry]:
    """Recorded messages first..first+count-1; every 7th has no id (published by a bare NATS client)."""
    entries = []
    for seq in range(first, first + count):
        body = b'{"type":"Note","n":%d}' % seq if seq % 7 == 0 else b'{"type":"Note","id":"id-%d","n":%d}' % (seq, seq)
        entries.append(Entry(body, DAY1 + seq, f"sq.ctl.note{seq % 3}", "Note", seq))
    with WalWriter.open(directory, contiguous=False, segment_size=64 << 10) as writer:
        for start in range(0, count, 500):
            writer.append_batch(entries[start:start + 500])
    return entries


async def stream_contents(bus: Bus, stream: str, count: int) -> list[tuple[int, str, bytes, str]]:
    """(stream seq, subject, data, Nats-Msg-Id) of every message, read with an ordered consumer."""
    got: list[tuple[int, str, bytes, str]] = []

    async def on_message(msg: object) -> None:
        got.append((msg.metadata.sequence.stream, msg.subject, msg.data, msg.headers["Nats-Msg-Id"]))  # type: ignore[attr-defined]

    subscription = await bus.js.subscribe("", stream=stream, ordered_consumer=True, cb=on_message,
                                          config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    await eventually(lambda: len(got) >= count, message=f"{count} messages read back")
    await subscription.unsubscribe()
    return got


async def test_republish_restores_a_wiped_stream_with_its_sequences_ids_and_bytes(tmp_path: Path, bus: Bus) -> None:
    entries = contiguous_log(tmp_path / "wal" / "SQ_TRADING", 101, 2500)
    report = await republish(tmp_path / "wal", "SQ_TRADING", bus)
    assert (report.published, report.duplicates, report.aligned) == (2500, 0, True)
    assert (report.first_seq, report.last_seq, report.stream_last_seq) == (101, 2600, 2600)
    got = await stream_contents(bus, "SQ_TRADING", 2500)
    expected = [(e.seq, e.subject, bytes(e.payload), f"id-{e.seq}" if e.seq % 7 else
                 derived_id(f"SQ_TRADING:{e.seq}", "republish")) for e in entries]
    assert got == expected
    again = await republish(tmp_path / "wal", "SQ_TRADING", bus)  # an interrupted or repeated run resumes
    assert (again.published, again.resumed_after, again.aligned) == (0, 2600, True)


async def test_republish_reports_lost_alignment_after_a_gap_and_refuses_a_foreign_stream(
        history: Path, tmp_path: Path, bus: Bus) -> None:
    report = await republish(history, "SQ_TRADING", bus)
    assert (report.published, report.aligned, report.first_misaligned, report.stream_last_seq) == (5, False, 5, 5)
    contiguous_log(tmp_path / "other" / "SQ_TRADING", 1, 10)
    with pytest.raises(RepublishError, match="differs from the WAL record"):
        await republish(tmp_path / "other", "SQ_TRADING", bus)


def test_cli_republish_creates_a_missing_stream(history: Path, broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--wal-root", str(history), "--stream", "SQ_MD", "--republish",
                 "--nats-url", broker.url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["published"], report["aligned"], report["stream_last_seq"]) == (6, True, 6)

    async def read_back() -> list[tuple[int, str, bytes, str]]:
        bus = await Bus.connect(broker.url)
        try:
            return await stream_contents(bus, "SQ_MD", 6)
        finally:
            await bus.close()

    got = asyncio.run(read_back())
    assert [(seq, data) for seq, _subject, data, _id in got] == \
        [(r.seq, bytes(r.payload)) for r in WalReader(history / "SQ_MD").records()]
