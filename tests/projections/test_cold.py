"""Finished rows go to disk: queries, reports and checkpoints see exactly what an all-in-memory projection sees."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from events import (
    Bar,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    RiskDecision,
    Trade,
    derived_id,
    subject_for,
)
from events.codec import AnyEvent
from projections.service import Projections
from projections.tables import ROW_TYPES
from store.follow import Envelope

T0 = 1_700_000_000_000_000_000
NS = 1_000_000_000
# One question per table, ordered so the whole table is compared row by row.
EVERY_ROW = {
    "orders": "select * from orders order by order_id",
    "children": "select * from children order by child_id",
    "fills": "select * from fills order by report_id",
    "decisions": "select * from decisions order by decision_id",
    "audit": "select * from audit order by stream, seq",
    "pnl": "select * from pnl order by account, ts, net_pnl",
    "candles": "select * from candles order by venue, symbol, interval, open_time",
    "positions": "select * from positions order by account, symbol",
}


def _order(n: int, ts: int) -> list[AnyEvent]:
    """Order n of account ACC(n % 2): filled and completed, or (every fifth) rejected by risk."""
    order_id, account = derived_id("cold", "order", n), f"ACC{n % 2}"
    intent = OrderIntent(id=order_id, ts=ts, account=account, client_order_id=f"c{n}", symbol="XYZ",
                         side="BUY" if n % 3 else "SELL", quantity=D(2))
    rejected = n % 5 == 4
    events: list[AnyEvent] = [intent, RiskDecision(id=derived_id(order_id, "risk-decision"), ts=ts + 1,
                                                   order_id=order_id, account=account, symbol="XYZ",
                                                   accepted=not rejected, checks_run=6)]
    if rejected:
        return events
    child_id = derived_id(order_id, "child")
    price = D(100) + D(n % 7) / 10
    events += [ChildOrder(id=child_id, ts=ts + 2, order_id=order_id, child_id=child_id, account=account, venue="SIM",
                          symbol="XYZ", side=intent.side, quantity=D(2)),
               ExecutionReport(id=derived_id(child_id, "fill"), ts=ts + 3, order_id=order_id, child_id=child_id,
                               account=account, venue="SIM", symbol="XYZ", side=intent.side, status="FILLED",
                               last_quantity=D(2), last_price=price, cum_quantity=D(2), fee=D("0.02")),
               ParentOrderCompleted(id=derived_id(order_id, "completed"), ts=ts + 4, order_id=order_id,
                                    account=account, client_order_id=f"c{n}", symbol="XYZ", side=intent.side,
                                    algo="MARKET", status="FILLED", quantity=D(2), filled_quantity=D(2), children=1,
                                    start_ts=ts, end_ts=ts + 3, average_price=price, arrival_price=price)]
    return events


def _bar(minute: int) -> Bar:
    open_time = T0 + minute * 60 * NS
    return Bar(id=derived_id("cold", "bar", minute), ts=open_time + 60 * NS, venue="SIM", symbol="XYZ", interval="1m",
               open_time=open_time, open=D(100), high=D(101), low=D(99), close=D(100), volume=D(5), trade_count=3)


def _history(orders: int, *, start: int = 0) -> list[AnyEvent]:
    """An order every 10 s of event time, a trade with each, and a bar a minute."""
    events: list[AnyEvent] = []
    for n in range(start, start + orders):
        ts = T0 + n * 10 * NS
        events += _order(n, ts)
        events.append(Trade(id=derived_id("cold", "trade", n), ts=ts + 5, venue="SIM", symbol="XYZ",
                            price=D(100) + D(n % 3), quantity=D(1)))
        if n % 6 == 5:
            events.append(_bar(n // 6))
    return events


def _feed(projections: Projections, events: list[AnyEvent], first_seq: int = 1) -> None:
    projections.apply_all(
        Envelope(event, "SQ_MD" if isinstance(event, (Trade, Bar)) else "SQ_TRADING", seq, subject_for(event),
                 event.ts, live=True)
        for seq, event in enumerate(events, start=first_seq))


def _answers(projections: Projections, accounts: tuple[str, ...] | None = None) -> dict[str, list[dict[str, object]]]:
    tables = projections.tables(accounts=accounts)
    return {name: projections.query(sql, tables, max_rows=10_000).table.to_pylist() for name, sql in EVERY_ROW.items()}


def _pair(tmp_path: Path, spill_after_rows: int) -> tuple[Projections, Projections]:
    (tmp_path / "wal").mkdir(exist_ok=True)
    spilling = Projections(tmp_path / "wal", tmp_path / "spilling", spill_after_rows=spill_after_rows)
    memory = Projections(tmp_path / "wal", tmp_path / "memory")
    return spilling, memory


async def test_spilled_projection_answers_every_query_exactly_as_one_kept_in_memory(tmp_path: Path) -> None:
    spilling, memory = _pair(tmp_path, spill_after_rows=200)
    events = _history(300)                                         # 50 minutes of event time
    for start in range(0, len(events), 250):
        _feed(spilling, events[start:start + 250], start + 1)
        _feed(memory, events[start:start + 250], start + 1)
        await spilling.checkpoint()
    assert spilling.cold.rows["fills"] > 0 and len(spilling.cold.parts["audit"]) > 1
    # Only orders that could still change stay in memory: those of the last chunk and the last minute.
    assert 0 < len(spilling.state.orders) <= 250 // 5 + 60 // 10 < len(memory.state.orders) // 4
    assert _answers(spilling) == _answers(memory)
    assert _answers(spilling, ("ACC1",)) == _answers(memory, ("ACC1",))
    for name in ("orders", "fills", "pnl"):
        assert len(spilling.rows(name)) == len(memory.rows(name))
    assert {o.order_id: o.filled_quantity for o in spilling.rows("orders")} == \
        {o.order_id: o.filled_quantity for o in memory.rows("orders")}


async def test_restart_adopts_the_checkpoints_parts_and_deletes_parts_written_after_it(tmp_path: Path) -> None:
    spilling, _ = _pair(tmp_path, spill_after_rows=200)
    events = _history(200)
    _feed(spilling, events)
    await spilling.checkpoint()
    at_checkpoint = _answers(spilling)
    parts = {name: list(files) for name, files in spilling.cold.parts.items()}
    # More rows go to disk, then the process dies before its next checkpoint.
    _feed(spilling, _history(100, start=200), len(events) + 1)
    spilling.spill_if_due()
    late = {name: files[len(parts.get(name, [])):] for name, files in spilling.cold.parts.items()}
    assert any(late.values())

    restarted = Projections(tmp_path / "wal", tmp_path / "spilling", spill_after_rows=200)
    restarted.load_and_catch_up()
    assert restarted.cold.parts == parts
    for name, files in late.items():
        assert not any((tmp_path / "spilling" / "cold" / name / f).exists() for f in files)
    assert _answers(restarted) == at_checkpoint
    # The restart still knows the reports, orders and children it handed to disk: copies change nothing.
    copies = [e for e in events[:40] if isinstance(e, (OrderIntent, ChildOrder, ExecutionReport))]
    assert copies and any(e.id in restarted.state.spilled for e in copies if isinstance(e, OrderIntent))
    _feed(restarted, copies, len(events) + 1)
    after = _answers(restarted)
    assert len(after.pop("audit")) == len(at_checkpoint.pop("audit")) + len(copies)   # the log holds the copies
    assert after == at_checkpoint


async def test_copies_of_spilled_bars_and_reports_are_not_taken_again(tmp_path: Path) -> None:
    spilling, memory = _pair(tmp_path, spill_after_rows=100)
    events = _history(120)
    for projections in (spilling, memory):
        _feed(projections, events)
    await spilling.checkpoint()
    assert spilling.cold.rows["candles"] > 0
    # Late copies of an old bar, of a recent fill, and of an order and child already on disk change nothing.
    copies = [_bar(3), next(e for e in reversed(events) if isinstance(e, ExecutionReport)),
              *(e for e in events[:6] if isinstance(e, (OrderIntent, ChildOrder)))]
    assert events[0].id in spilling.state.spilled
    for projections in (spilling, memory):
        _feed(projections, copies, len(events) + 1)
    assert _answers(spilling) == _answers(memory)


def test_readers_never_write_or_delete_parts(tmp_path: Path) -> None:
    (tmp_path / "wal").mkdir()
    stray = tmp_path / "projections" / "cold" / "fills" / "part-00000007.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not ours to delete")
    reader = Projections(tmp_path / "wal", tmp_path / "projections")
    reader.load_and_catch_up()
    _feed(reader, _history(50))
    reader.spill_if_due()
    assert stray.exists() and reader.cold.parts == {} and len(reader.rows("fills")) == 40
    assert set(ROW_TYPES) == set(_answers(reader)) | {"book_tops"}


async def test_parts_merge_as_they_accumulate_and_merged_away_parts_go_once_no_checkpoint_names_them(
        tmp_path: Path) -> None:
    spilling, memory = _pair(tmp_path, spill_after_rows=40)
    events = _history(400)
    for start in range(0, len(events), 60):
        for projections in (spilling, memory):
            _feed(projections, events[start:start + 60], start + 1)
        await spilling.checkpoint()
    spills = spilling.state.spills
    assert spills > 30
    for name, files in spilling.cold.parts.items():
        assert len(files) <= spills.bit_length() + 1, (name, files)    # geometric sizes, not one part per spill
    await spilling.checkpoint()                                         # nothing new: the same parts stay named
    on_disk = {(p.parent.name, p.name) for p in (tmp_path / "spilling" / "cold").glob("*/part-*.parquet")}
    named = {(name, f) for name, files in spilling.cold.parts.items() for f in files}
    previous = {(name, f) for name, files in spilling._previous_parts.items() for f in files}
    assert named <= on_disk <= named | previous
    assert _answers(spilling) == _answers(memory)


async def test_a_failed_write_leaves_every_row_in_memory_and_nothing_twice(tmp_path: Path) -> None:
    spilling, memory = _pair(tmp_path, spill_after_rows=100)
    (tmp_path / "spilling" / "cold").mkdir(parents=True)
    (tmp_path / "spilling" / "cold" / "fills").write_text("a file where the fills' parts would go")
    events = _history(120)
    for projections in (spilling, memory):
        _feed(projections, events)
    with pytest.raises(OSError):
        await spilling.checkpoint()
    assert spilling.cold.parts == {} and spilling.state.cold_parts == {}
    assert len(spilling.state.orders) == len(memory.state.orders)
    assert _answers(spilling) == _answers(memory)


async def test_a_trader_sees_only_their_accounts_rows_on_disk_and_in_memory_audit_included(tmp_path: Path) -> None:
    spilling, _ = _pair(tmp_path, spill_after_rows=100)
    events = _history(120)
    _feed(spilling, events)
    await spilling.checkpoint()
    _feed(spilling, _history(20, start=120), len(events) + 1)
    assert spilling.cold.rows["audit"] > 0 and spilling.state.audit
    answers = _answers(spilling, ("ACC1",))
    for name in ("orders", "children", "fills", "decisions", "audit", "pnl", "positions"):
        assert answers[name] and {row["account"] for row in answers[name]} == {"ACC1"}, name
