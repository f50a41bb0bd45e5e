"""`sq report orders`: one RTS 24 record per order event of the WAL, in WAL order, as CSV or Parquet."""

from __future__ import annotations

import csv
import io
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from events.codec import encode
from events.subjects import STREAMS
from events.trading import ChildOrder, ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision
from gateway.cli import main as sq
from processors.reporting.core import iso_microseconds
from processors.reporting.orders import (
    COLUMNS,
    NOT_APPLICABLE,
    ORDER_EVENT_TYPES,
    RTS24_FIELDS,
    order_records,
)
from store import WalWriter
from store.follow import history, last_recorded
from tests.conftest import REPO_ROOT
from tests.processors._recorded_run import recorded_run


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded run's streams in a real WAL, as the recorder writes them."""
    root = tmp_path_factory.mktemp("orders")
    log = recorded_run()
    for spec in STREAMS:
        with WalWriter.open(root / "wal" / spec.name, contiguous=True, segment_size=1 << 16) as writer:
            for envelope in log:
                if envelope.stream == spec.name:
                    writer.append(encode(envelope.event), ts=envelope.stored_ts, subject=envelope.subject,
                                  type=type(envelope.event).__name__)
    return root


def _wal_order_events(data_dir: Path) -> list[Any]:
    wal = data_dir / "wal"
    return [e for e in history(wal, ["SQ_TRADING"], {}, until=last_recorded(wal, ["SQ_TRADING"]), source="test")
            if isinstance(e.event, ORDER_EVENT_TYPES)]


def _as_text(row: dict[str, Any]) -> dict[str, str]:
    return {key: "" if value is None else str(value) for key, value in row.items()}


def test_export_when_read_from_the_wal_then_one_record_per_order_event_in_wal_order(data_dir: Path) -> None:
    envelopes = _wal_order_events(data_dir)
    rows = list(order_records(data_dir))
    assert [(r["wal_seq"], r["event_id"], r["event_type"]) for r in rows] == \
           [(e.seq, e.event.id, type(e.event).__name__) for e in envelopes]
    kinds = {r["event_type"] for r in rows}
    assert kinds == {t.__name__ for t in ORDER_EVENT_TYPES}, "the run covers every order event type"
    for row, envelope in zip(rows, envelopes, strict=True):
        event = envelope.event
        assert row["date_time"] == iso_microseconds(event.ts) and row["event_ts"] == event.ts
        assert row["stored_time"] == iso_microseconds(envelope.stored_ts)
        assert row["client_id"] == event.account
        assert row["order_id"] == getattr(event, "order_id", None) or event.id
        match event:
            case OrderIntent():
                assert (row["order_event"], row["level"], row["initial_quantity"]) == \
                       ("NEWO", "parent", str(event.quantity))
                assert row["buy_sell"] == {"BUY": "BUYI", "SELL": "SELL"}[event.side]
                assert row["routing_strategy"] == event.algo_kind
            case RiskDecision():
                assert row["order_event"] == ("CHME" if event.accepted else "REMO")
                assert row["decision_id"] == (event.id if event.accepted else None)
            case ChildOrder():
                assert (row["order_event"], row["order_status"], row["level"]) == ("NEWO", "ROUT", "child")
                assert (row["strategy_linked_order_id"], row["venue"]) == (event.order_id, event.venue)
            case ExecutionReport() if event.last_quantity > 0:
                assert row["order_event"] in ("PARF", "FILL")
                assert D(row["traded_quantity"]) == event.last_quantity
                assert D(row["transaction_price"]) == event.last_price
                assert D(row["remaining_quantity"]) == event.leaves_quantity
            case ParentOrderCompleted():
                assert row["order_event"] == {"FILLED": "FILL", "CANCELLED": "CAME", "EXPIRED": "EXPI"}[event.status]
                assert row["order_status"] == "INAC"


def test_export_when_a_window_is_given_then_only_events_of_that_time_and_account(data_dir: Path) -> None:
    everything = list(order_records(data_dir))
    times = sorted(r["event_ts"] for r in everything)
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    window = list(order_records(data_dir, from_ts=start, to_ts=end, accounts={"ACC2"}))
    expected = [r for r in everything if start <= r["event_ts"] < end and r["client_id"] == "ACC2"]
    assert window == expected and 0 < len(window) < len(everything)


def test_cli_csv_and_parquet_hold_the_same_records_as_the_fold(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_as_text(row) for row in order_records(data_dir)]
    assert sq(["report", "orders", "--data-dir", str(data_dir), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert list(csv.DictReader(io.StringIO(captured.out))) == rows
    assert f"{len(rows)} order events written; 0 undecodable" in captured.err
    out = tmp_path / "orders.parquet"
    assert sq(["report", "orders", "--data-dir", str(data_dir), "--format", "parquet", "--out", str(out),
               "--entity-id", "5493001KJTIIGC8Y1R12", "--trading-capacity", "DEAL"]) == 0
    table = pq.read_table(out)
    assert table.column_names == COLUMNS
    read = [_as_text(row) for row in table.to_pylist()]
    assert read == [{**row, "entity_id": "5493001KJTIIGC8Y1R12", "trading_capacity": "DEAL"} for row in rows]


def test_cli_when_the_window_is_not_a_time_then_exit_2_naming_it(data_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert sq(["report", "orders", "--data-dir", str(data_dir), "--from", "yesterday"]) == 2
    assert "'yesterday'" in capsys.readouterr().err
    assert sq(["report", "orders", "--data-dir", str(data_dir), "--format", "parquet"]) == 2
    assert "--out" in capsys.readouterr().err


def test_readme_names_every_column_and_every_rts24_field_that_does_not_apply() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Order records"):]
    missing = [c for c in COLUMNS if f"`{c}`" not in section]
    missing += [f for f in [*NOT_APPLICABLE, *(f for f in RTS24_FIELDS.values() if f)] if f not in section]
    assert not missing, missing


def test_audit_trail_of_a_filled_order_holds_the_trade_report_of_each_fill(data_dir: Path) -> None:
    from processors.reporting.audit import audit_order

    rows = list(order_records(data_dir))
    filled = next(r["order_id"] for r in rows if r["traded_quantity"] is not None)
    trail = audit_order(data_dir, filled)
    fills = [e.event_id for e in trail.entries if e.event_type == "ExecutionReport" and e.event["last_price"]]
    reports = [e.event["report_id"] for e in trail.entries if e.event_type == "TradeReported"]
    assert fills and reports == fills
