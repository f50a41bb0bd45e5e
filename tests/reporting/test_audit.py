"""`sq report audit`: an order's causal history from a real WAL, with segment, offset and seal of each event."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from events.subjects import STREAM_TRADING
from processors.reporting.audit import UNSEALED, audit_order, render_text
from store.reader import WalReader
from tests.reporting._wal import write_history

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", "audit", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_audit_when_order_filled_then_every_event_in_log_order_with_its_wal_position(tmp_path):
    write_history(tmp_path, segment_size=600)  # small segments: most are sealed, the last one is not
    trail = audit_order(tmp_path, "o1")
    assert [e.event_type for e in trail.entries] == [
        "OrderIntent", "RiskDecision", "ChildOrder", "ExecutionReport", "ChildOrder", "ExecutionReport",
        "ParentOrderCompleted"]
    assert [e.event_id for e in trail.entries] == ["o1", "d1", "ch1", "r10", "ch2", "r30", "t1"]
    assert [e.seq for e in trail.entries] == sorted(e.seq for e in trail.entries)
    directory = tmp_path / "wal" / STREAM_TRADING.name
    by_position = {(r.segment.name, r.offset): r for r in WalReader(directory).records()}
    layout = {info.path.name: info for info in WalReader(directory).layout().segments}
    for entry in trail.entries:
        record = by_position[(entry.segment, entry.offset)]  # the named bytes hold exactly this event
        assert record.seq == entry.seq and json.loads(bytes(record.payload))["id"] == entry.event_id
        info = layout[entry.segment]
        assert entry.seal == (info.seal.chain_hash.hex() if info.seal else UNSEALED)
    assert len({e.segment for e in trail.entries}) > 1
    sealed = [p for p in trail.segments if p.seal != UNSEALED]
    assert sealed and all(p.verified for p in sealed)
    for proof in sealed:
        body = (directory / proof.segment).read_bytes()[:layout[proof.segment].seal_offset]
        assert hashlib.sha256(body).hexdigest() == proof.seal
    tca = trail.entries[-1].event
    assert tca["shortfall_bps"] == "20" and tca["arrival_price"] == "10"


def test_audit_when_cancelled_by_kill_switch_then_cause_and_cancel_by_client_order_id_are_included(tmp_path):
    write_history(tmp_path)
    trail = audit_order(tmp_path, "o2")
    types = [(e.event_type, e.event_id) for e in trail.entries]
    assert types == [("OrderIntent", "o2"), ("RiskDecision", "d2"), ("ChildOrder", "ch3"),
                     ("KillSwitchEngaged", "k1"), ("ChildCancel", "cc3"), ("CancelIntent", "x2"),
                     ("ExecutionReport", "r43"), ("ParentOrderCompleted", "t2")]
    assert {e.seal for e in trail.entries} == {UNSEALED}
    assert all(p.verified is None for p in trail.segments)
    text = render_text(trail)
    assert "REJECTED" not in text and "ACCEPTED after 12 checks" in text and "CANCELLED filled 0/5" in text


def test_audit_cli_prints_json_and_text_and_exits_2_for_an_unknown_order(tmp_path):
    write_history(tmp_path, segment_size=600)
    done = _cli("o1", "--data-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["order_id"] == "o1" and data["account"] == "ACC1" and data["event_count"] == 7
    first = data["events"][0]
    assert {"stream", "seq", "segment", "offset", "seal", "event"} <= set(first)
    assert first["event"]["client_order_id"] == "c-1"
    text = _cli("o1", "--data-dir", str(tmp_path))
    assert text.returncode == 0 and "Audit trail of order o1" in text.stdout and "@ byte" in text.stdout
    missing = _cli("nope", "--data-dir", str(tmp_path))
    assert missing.returncode == 2 and "order nope has no event in the WAL" in missing.stderr


def test_audit_when_intent_was_published_raw_on_nats_without_id_then_its_derived_id_finds_it(tmp_path):
    from events import intent_id_for
    from store import WalWriter

    raw = b'{"account":"ACC9","client_order_id":"raw-1","symbol":"XYZ","side":"BUY","quantity":"1"}'
    with WalWriter.open(tmp_path / "wal" / STREAM_TRADING.name, contiguous=True) as writer:
        writer.append(raw, ts=1_700_000_000_000_000_000, subject="sq.ord.intent.ACC9", type="")
    order_id = intent_id_for("ACC9", "raw-1")
    trail = audit_order(tmp_path, order_id)
    assert [(e.event_type, e.event_id, e.event_ts) for e in trail.entries] == [
        ("OrderIntent", order_id, 1_700_000_000_000_000_000)]
