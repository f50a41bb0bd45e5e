"""Read models from an order's life: state machine, positions and P&L, SQL over Arrow, checkpoint round trip."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from events import (
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    RiskDecision,
    Trade,
    TwapAlgo,
    derived_id,
    subject_for,
)
from events.codec import AnyEvent
from projections.checkpoint import load_checkpoint, snapshot_tables, write_checkpoint
from projections.query import QueryError, SqlEngine
from projections.state import ProjectionState, evolve
from projections.tables import TableCache
from store.follow import Envelope

T0 = 1_700_000_000_000_000_000
ORDER = "0193aaaa-0000-7000-8000-000000000001"


def _life() -> list[AnyEvent]:
    intent = OrderIntent(id=ORDER, ts=T0, account="ACC1", client_order_id="c1", symbol="BTCUSDT", side="BUY",
                         quantity=D("1.0"), limit_price=D("101"), algo=TwapAlgo(duration_s=60, slices=2))
    decision = RiskDecision(id=derived_id(ORDER, "risk-decision"), ts=T0 + 1, order_id=ORDER, account="ACC1",
                            symbol="BTCUSDT", accepted=True, checks_run=14, causation_id=ORDER)
    events: list[AnyEvent] = [intent, decision]
    for index, price in enumerate((D("100"), D("100.5"))):
        child_id = derived_id(ORDER, "child", index)
        events.append(ChildOrder(id=child_id, ts=T0 + 10 + index, order_id=ORDER, child_id=child_id, account="ACC1",
                                 venue="SIM_A", symbol="BTCUSDT", side="BUY", quantity=D("0.5"), slice_index=index))
        events.append(ExecutionReport(id=derived_id(child_id, "fill"), ts=T0 + 20 + index, order_id=ORDER,
                                      child_id=child_id, account="ACC1", venue="SIM_A", symbol="BTCUSDT", side="BUY",
                                      status="FILLED", last_quantity=D("0.5"), last_price=price,
                                      cum_quantity=D("0.5"), fee=D("0.01")))
    events.append(Trade(id=derived_id(ORDER, "mark"), ts=T0 + 100, venue="SIM_A", symbol="BTCUSDT",
                        price=D("102"), quantity=D("1")))
    return events


def _fold(events: list[AnyEvent]) -> ProjectionState:
    state = ProjectionState()
    for seq, event in enumerate(events, start=1):
        stream = "SQ_MD" if isinstance(event, Trade) else "SQ_TRADING"
        evolve(state, Envelope(event, stream, seq, subject_for(event), T0 + seq, live=False))
    return state


def test_order_life_ends_filled_with_exact_average_price_and_position() -> None:
    state = _fold(_life())
    order = state.orders[ORDER]
    assert order.status == "FILLED" and order.filled_quantity == D("1.0") and order.children == 2
    assert order.avg_price == D("100.25") and order.fees == D("0.02")
    (position,) = state.position_rows()
    assert position.quantity == D("1.0") and position.avg_price == D("100.25")
    assert position.mark == D("102") and position.unrealized_pnl == D("1.75")
    assert [row.event_type for row in state.audit] == ["OrderIntent", "RiskDecision", "ChildOrder",
                                                       "ExecutionReport", "ChildOrder", "ExecutionReport"]


def test_partial_fill_shows_partially_filled() -> None:
    state = _fold(_life()[:4])
    assert state.orders[ORDER].status == "PARTIALLY_FILLED" and state.orders[ORDER].filled_quantity == D("0.5")


def test_sql_over_projection_tables_returns_exact_decimals() -> None:
    state = _fold(_life())
    tables = TableCache().all(state)
    result = SqlEngine().query("select account, symbol, quantity, avg_price from positions", tables)
    (row,) = result.table.to_pylist()
    assert row["quantity"] == D("1.0") and row["avg_price"] == D("100.25")
    fills = SqlEngine().query("select sum(quantity * price) as notional from fills where order_id = ?", tables,
                              parameters=[ORDER]).table.to_pylist()
    assert fills[0]["notional"] == D("100.25")


def test_sql_refuses_writes_and_file_access() -> None:
    tables = TableCache().all(_fold(_life()))
    engine = SqlEngine()
    for sql in ("delete from orders", "create table x as select 1", "select * from read_csv('/etc/passwd')",
                "copy orders to '/tmp/orders.csv'", "select 1; select 2"):
        with pytest.raises(QueryError):
            engine.query(sql, tables)


def test_checkpoint_round_trip_restores_identical_tables_and_exact_positions(tmp_path: Path) -> None:
    state = _fold(_life())
    cache = TableCache()
    write_checkpoint(tmp_path, snapshot_tables(state, cache), dict(state.stream_positions), state.version)
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None
    assert loaded.stream_positions == state.stream_positions
    assert loaded.positions == state.positions
    before, after = TableCache().all(state), TableCache().all(loaded)
    for name, table in before.items():
        assert after[name].equals(table), name


def test_incremental_tables_equal_a_full_rebuild() -> None:
    events = _life()
    state, cache = ProjectionState(), TableCache()
    for seq, event in enumerate(events, start=1):
        stream = "SQ_MD" if isinstance(event, Trade) else "SQ_TRADING"
        evolve(state, Envelope(event, stream, seq, subject_for(event), T0 + seq, live=True))
        cache.all(state)  # materialise after every event, as queries would
    for name, table in TableCache().all(state).items():
        assert cache.table(state, name).equals(table), name


def test_router_completion_sets_the_final_status_and_tca_even_over_later_reports() -> None:
    from events import ParentOrderCompleted

    events = _life()[:4]  # intent, decision, first child and its fill: 0.5 of 1.0
    completion = ParentOrderCompleted(id=derived_id(ORDER, "tca"), ts=T0 + 50, order_id=ORDER, account="ACC1",
                                      client_order_id="c1", symbol="BTCUSDT", side="BUY", algo="TWAP",
                                      status="EXPIRED", reason="schedule ended", quantity=D("1.0"),
                                      filled_quantity=D("0.5"), children=1, start_ts=T0, end_ts=T0 + 50,
                                      arrival_price=D("99.9"), average_price=D("100"), shortfall_bps=D("10.01"))
    state = _fold([*events, completion])
    order = state.orders[ORDER]
    assert (order.status, order.completed, order.end_reason) == ("EXPIRED", True, "schedule ended")
    assert order.arrival_price == D("99.9") and order.shortfall_bps == D("10.01")
    assert [row.event_type for row in state.audit][-1] == "ParentOrderCompleted"


def test_checkpoint_when_restored_mid_order_then_the_rest_folds_as_in_one_run(tmp_path: Path) -> None:
    # The orders table is built from the shared order model (processors.orders); a checkpoint holds
    # rows only, so the model is rebuilt from them and must fold the rest of the order the same way.
    events = _life()
    whole = _fold(events)
    half = _fold(events[:4])
    write_checkpoint(tmp_path, snapshot_tables(half, TableCache()), dict(half.stream_positions), half.version)
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded.models[ORDER].filled == D("0.5")
    for seq, event in enumerate(events[4:], start=5):
        stream = "SQ_MD" if isinstance(event, Trade) else "SQ_TRADING"
        evolve(loaded, Envelope(event, stream, seq, subject_for(event), T0 + seq, live=False))
    assert loaded.orders == whole.orders and loaded.children == whole.children


def test_kill_switch_when_children_then_finish_then_order_cancelled_with_what_filled() -> None:
    from events import KillSwitchEngaged

    events = _life()[:4]  # the first slice filled 0.5 of 1.0
    second = derived_id(ORDER, "child", 1)
    events += [ChildOrder(id=second, ts=T0 + 30, order_id=ORDER, child_id=second, account="ACC1", venue="SIM_A",
                          symbol="BTCUSDT", side="BUY", quantity=D("0.5"), slice_index=1),
               KillSwitchEngaged(id=derived_id(ORDER, "kill"), ts=T0 + 31, account=None, actor="ops", reason="drill")]
    state = _fold(events)
    assert state.orders[ORDER].cancel_requested and state.orders[ORDER].status == "PARTIALLY_FILLED"
    cancelled = ExecutionReport(id=derived_id(second, "cancelled"), ts=T0 + 32, order_id=ORDER, child_id=second,
                                account="ACC1", venue="SIM_A", symbol="BTCUSDT", side="BUY", status="CANCELLED")
    state = _fold([*events, cancelled])
    order = state.orders[ORDER]
    assert (order.status, order.filled_quantity, order.working_children) == ("CANCELLED", D("0.5"), 0)


def test_audit_when_the_router_recorded_a_schedule_then_it_is_in_the_orders_trail() -> None:
    from events import ParentOrderScheduled

    events = _life()
    plan = ParentOrderScheduled(id=derived_id(ORDER, "parent-scheduled"), ts=T0 + 2, order_id=ORDER, account="ACC1",
                                client_order_id="c1", symbol="BTCUSDT", side="BUY", quantity=D("1.0"),
                                limit_price=D("101"), algo="TWAP", lot=D("0.1"), start_ts=T0 + 1,
                                slice_times=[T0 + 1, T0 + 30], slice_quantities=[D("0.5"), D("0.5")])
    state = _fold([*events[:2], plan, *events[2:]])
    assert [row.event_type for row in state.audit][:3] == ["OrderIntent", "RiskDecision", "ParentOrderScheduled"]
    assert state.orders[ORDER] == _fold(events).orders[ORDER]          # the schedule changes no column
