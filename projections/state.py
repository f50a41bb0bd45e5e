"""The read models' state and the pure function that folds one logged event into it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from events._base import Event
from events.control import KillSwitchEngaged
from events.market import Bar, BookTop, Trade, TradeSummary
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
)
from processors.orders import (
    SINGLE_SLICE,
    Child,
    Order,
    apply,
    attach,
    child_of,
    fold_child,
    is_fill,
    order_of,
)
from processors.positions import Position, apply_fill
from processors.recent import Recent
from projections.rows import (
    ZERO,
    AuditRow,
    CandleRow,
    ChildRow,
    DecisionRow,
    FillRow,
    OrderRow,
    PnlPoint,
    PositionRow,
    TopRow,
)
from store.follow import Envelope

PNL_MARK_INTERVAL_NS = 60 * 1_000_000_000
APPEND_ONLY = ("fills", "decisions", "audit", "pnl")   # tables whose rows never change once added
# How long a complete order stays in memory before it may go to disk: nothing the router or a venue
# sends changes it after completion; copies of its events are dropped by `spilled`, not by waiting.
QUIET_NS = 60 * 1_000_000_000


@dataclass
class ProjectionState:
    """Every read model, keyed for incremental updates; `positions` maps stream name to last applied seq."""

    orders: dict[str, OrderRow] = field(default_factory=dict)
    children: dict[str, ChildRow] = field(default_factory=dict)
    # The shared order model (processors.orders) of each order in `orders`: its fold decides the rows'
    # status, fills and working children, by the same rule risk and the router use.
    models: dict[str, Order] = field(default_factory=dict)
    fills: list[FillRow] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    candles: dict[tuple[str, str, str, int], CandleRow] = field(default_factory=dict)
    tops: dict[tuple[str, str], TopRow] = field(default_factory=dict)
    audit: list[AuditRow] = field(default_factory=list)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    marks: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    pnl: list[PnlPoint] = field(default_factory=list)
    last_pnl_ts: dict[str, int] = field(default_factory=dict)
    # Report ids, and ids of orders and children handed to disk, with their event time, while a copy
    # can still arrive (processors.recent); kept by checkpoints.
    seen_reports: Recent[str, int] = field(default_factory=Recent)
    spilled: Recent[str, int] = field(default_factory=Recent)
    stream_positions: dict[str, int] = field(default_factory=dict)
    version: int = 0
    # Per table that is rebuilt whole (not append-only): the state version it last changed at, so a
    # market tick does not invalidate the orders table's cached answers (projections.tables).
    changed_at: dict[str, int] = field(default_factory=dict)
    clock: int = 0                      # the newest event time folded in
    # Rows handed to disk (projections.cold): the parts per table, how many hand-overs so far, and
    # per candle series the newest open time on disk (a copy of an older bar is not taken again).
    cold_parts: dict[str, list[str]] = field(default_factory=dict)
    spills: int = 0
    candle_floors: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def touch(self, *tables: str) -> None:
        """Mark tables as changed by the event being folded."""
        for table in tables:
            self.changed_at[table] = self.version

    def final_rows(self) -> int:
        """Rows of the append-only tables in memory: what `final` would hand over at least."""
        return len(self.fills) + len(self.decisions) + len(self.audit) + len(self.pnl)

    def final(self, quiet_ns: int = QUIET_NS) -> dict[str, list[Any]]:
        """Per table, the rows no event can change any more (see projections.cold); the state is not changed.

        Every fill, decision, audit row and P&L point; orders complete (or rejected), with no child
        working and untouched for `quiet_ns` of event time, with their children; candles older than
        their series' newest.
        """
        horizon = self.clock - quiet_ns
        orders = [row for row in self.orders.values()
                  if (row.completed or row.status == "REJECTED") and row.working_children == 0
                  and row.updated_ts <= horizon]
        taken = {row.order_id for row in orders}
        newest: dict[tuple[str, str, str], int] = {}
        for venue, symbol, interval, open_time in self.candles:
            newest[(venue, symbol, interval)] = max(newest.get((venue, symbol, interval), open_time), open_time)
        return {"orders": orders, "children": [row for row in self.children.values() if row.order_id in taken],
                "candles": [row for key, row in sorted(self.candles.items()) if key[3] < newest[key[:3]]],
                "fills": list(self.fills), "decisions": list(self.decisions), "audit": list(self.audit),
                "pnl": list(self.pnl)}

    def forget(self, final: dict[str, list[Any]]) -> None:
        """Drop rows `final` returned, now on disk; copies of their orders and children are ignored from now on."""
        for row in final["orders"]:
            del self.orders[row.order_id]
            self.models.pop(row.order_id, None)
            self.spilled.set(row.order_id, self.clock, self.clock)
        for row in final["children"]:
            del self.children[row.child_id]
            self.spilled.set(row.child_id, self.clock, self.clock)
        for row in final["candles"]:
            series = (row.venue, row.symbol, row.interval)
            del self.candles[(*series, row.open_time)]
            self.candle_floors[series] = max(self.candle_floors.get(series, row.open_time), row.open_time)
        for name in APPEND_ONLY:
            rows: list[Any] = getattr(self, name)
            del rows[:len(final[name])]
        self.version += 1
        self.touch("orders", "children", "candles")
        self.spills += 1
    def position_rows(self) -> list[PositionRow]:
        """Positions with their latest mark and unrealized P&L."""
        rows = []
        for (account, symbol), position in sorted(self.positions.items()):
            mark = self.marks.get(symbol, (None, 0))[0]
            unrealized = position.unrealized_pnl(mark) if mark is not None else None
            rows.append(PositionRow(
                account=account, symbol=symbol, quantity=position.quantity, avg_price=position.avg_price,
                cost=position.cost, realized_pnl=position.realized_pnl, fees=position.fees, mark=mark,
                unrealized_pnl=unrealized, net_pnl=position.net_pnl(mark) if mark is not None else None,
                fills=position.fills, updated_ts=position.last_ts))
        return rows


# Rows keep the same few accounts, symbols, sides and statuses many thousand times over: one shared
# string each instead of a fresh copy per decoded event (about a fifth of a projection's memory).
_i = sys.intern


def _order_of(event: object) -> tuple[str, str] | None:
    """(order id, account) of an order-path event."""
    match event:
        case OrderIntent(id=order_id, account=account):
            return order_id, account
        case RiskDecision(order_id=order_id, account=account) | ChildOrder(order_id=order_id, account=account):
            return order_id, account
        case ChildCancel(order_id=order_id, account=account):
            return order_id, account
        case ExecutionReport(order_id=order_id, account=account):
            return order_id, account
        case ParentOrderCompleted(order_id=order_id, account=account):
            return order_id, account
        case ParentOrderScheduled(order_id=order_id, account=account):
            return order_id, account
        case CancelIntent(order_id=order_id, account=account) if order_id is not None:
            return order_id, account
    return None


def evolve(state: ProjectionState, envelope: Envelope) -> ProjectionState:
    """Fold one logged event into the read models (in place: the state is owned by one loop)."""
    event = envelope.event
    state.stream_positions[envelope.stream] = envelope.seq
    state.version += 1
    if event.ts > state.clock:
        state.clock = event.ts
    owner = _order_of(event)
    if owner is not None:
        order = state.orders.get(owner[0])
        state.audit.append(AuditRow(order_id=order.order_id if order is not None else owner[0],
                                    account=_i(owner[1]), stream=_i(envelope.stream), seq=envelope.seq, stored_ts=envelope.stored_ts,
                                    event_ts=event.ts, event_type=type(event).__name__, event_id=event.id,
                                    subject=_i(envelope.subject), causation_id=event.causation_id))
    match event:
        case OrderIntent():
            _on_intent(state, event)
            state.touch("orders")
        case RiskDecision():
            _on_decision(state, event)
            state.touch("orders")
        case ChildOrder():
            _on_child(state, event)
            state.touch("orders", "children")
        case ExecutionReport():
            _on_report(state, event)
            state.touch("orders", "children", "positions")
        case ParentOrderCompleted(order_id=order_id) if order_id in state.orders:
            state.touch("orders")
            # The router's word on how the parent ended is final (it also covers IOC slices that
            # expired, which no single report says); it applies the same rule as the model's fold.
            order = state.orders[order_id]
            if (model := state.models.get(order_id)) is not None:
                apply(model, event)
            order.status = _i(event.status)
            order.completed = True
            order.end_reason = event.reason
            order.arrival_price = event.arrival_price
            order.shortfall_bps = event.shortfall_bps
            order.vwap_slippage_bps = event.vwap_slippage_bps
            order.updated_ts = event.ts
        case CancelIntent(order_id=target) if target is not None and target in state.orders:
            state.touch("orders")
            row = state.orders[target]
            if row.account == event.account:            # the router ignores another account's cancel
                row.cancel_requested = True
                _fold(state, target, event)
            row.updated_ts = event.ts
        case KillSwitchEngaged(account=account):
            # The router cancels every order the kill switch covers: the row says a cancel was asked for.
            for order_id, model in state.models.items():
                if account in (None, model.account) and not model.done and model.stopping is None:
                    state.orders[order_id].cancel_requested = True
                    _fold(state, order_id, event)
        case Trade(symbol=symbol, price=price, ts=ts) | TradeSummary(symbol=symbol, price=price, ts=ts):
            _mark(state, symbol, price, ts)
            state.touch("positions")            # marks and unrealized P&L
        case Bar() if event.open_time > state.candle_floors.get((event.venue, event.symbol, event.interval), -1):
            key = (event.venue, event.symbol, event.interval, event.open_time)
            state.touch("candles")
            state.candles[key] = CandleRow(venue=event.venue, symbol=event.symbol, interval=event.interval,
                                           open_time=event.open_time, open=event.open, high=event.high,
                                           low=event.low, close=event.close, volume=event.volume,
                                           trade_count=event.trade_count)
        case BookTop():
            state.touch("book_tops")
            state.tops[(event.venue, event.symbol)] = TopRow(
                venue=event.venue, symbol=event.symbol, ts=event.ts, last_update_id=event.last_update_id,
                bid_price=event.bid_price, bid_size=event.bid_size, ask_price=event.ask_price,
                ask_size=event.ask_size, imbalance=event.imbalance)
    return state


def _child_of_row(row: ChildRow) -> Child:
    return Child(child_id=row.child_id, order_id=row.order_id, account=row.account, venue=row.venue,
                 symbol=row.symbol, side=row.side, quantity=row.quantity, slice_index=row.slice_index,
                 status=row.status, cum_quantity=row.cum_quantity)  # type: ignore[arg-type]


def model_of(row: OrderRow, children: list[ChildRow]) -> Order:
    """The order model its rows describe: what a checkpoint restores (processors.orders)."""
    model = Order(order_id=row.order_id, account=row.account, client_order_id=row.client_order_id,
                  symbol=row.symbol, side=row.side, quantity=row.quantity, limit_price=row.limit_price, algo=row.algo,
                  time_in_force=row.time_in_force, ts=row.created_ts, status=row.status,  # type: ignore[arg-type]
                  filled=row.filled_quantity, notional=row.notional, fees=row.fees,
                  slices=1 if row.algo in SINGLE_SLICE else None,
                  stopping="cancel requested" if row.cancel_requested else None, end_reason=row.end_reason)
    for child in sorted(children, key=lambda c: (c.slice_index, c.created_ts)):
        attach(model, _child_of_row(child))
    return model


def _sync(state: ProjectionState, order_id: str, ts: int) -> None:
    """Copy what the order's model says into its row: the table shows the shared fold's result."""
    row, model = state.orders.get(order_id), state.models.get(order_id)
    if row is None or model is None:
        return
    state.touch("orders")
    if not row.completed:                       # the router's completion already said how it ended
        row.status = _i(model.status)
    row.filled_quantity, row.notional, row.fees = model.filled, model.notional, model.fees
    row.avg_price = model.avg_price
    row.working_children = len(model.working)
    row.updated_ts = ts


def _fold(state: ProjectionState, order_id: str, event: Event) -> None:
    apply(state.models[order_id], event)
    _sync(state, order_id, event.ts)


def _on_intent(state: ProjectionState, intent: OrderIntent) -> None:
    if intent.id in state.orders or intent.id in state.spilled:
        return
    state.orders[intent.id] = OrderRow(
        order_id=intent.id, account=_i(intent.account), client_order_id=intent.client_order_id,
        symbol=_i(intent.symbol), side=_i(intent.side), quantity=intent.quantity, limit_price=intent.limit_price,
        algo=_i(intent.algo_kind), time_in_force=_i(intent.time_in_force),
        strategy=None if intent.strategy is None else _i(intent.strategy), status="PENDING_RISK",
        created_ts=intent.ts, updated_ts=intent.ts)
    state.models[intent.id] = order_of(intent)


def _on_decision(state: ProjectionState, decision: RiskDecision) -> None:
    order = state.orders.get(decision.order_id)
    state.decisions.append(DecisionRow(
        decision_id=decision.id, order_id=order.order_id if order is not None else decision.order_id,
        account=_i(decision.account), symbol=_i(decision.symbol),
        accepted=decision.accepted, failed_checks=",".join(f.check for f in decision.failures),
        reasons="; ".join(f.reason for f in decision.failures), checks_run=decision.checks_run, ts=decision.ts))
    if order is None:
        return
    order.accepted = decision.accepted
    order.reasons = "; ".join(f"{f.check}: {f.reason}" for f in decision.failures)
    _fold(state, order.order_id, decision)


def _on_child(state: ProjectionState, child: ChildOrder) -> None:
    if child.child_id in state.children or child.child_id in state.spilled or child.order_id in state.spilled:
        return
    order = state.orders.get(child.order_id)
    state.children[child.child_id] = ChildRow(
        child_id=child.child_id, order_id=order.order_id if order is not None else child.order_id,
        account=_i(child.account), venue=_i(child.venue), symbol=_i(child.symbol), side=_i(child.side),
        quantity=child.quantity, limit_price=child.limit_price, status="NEW", slice_index=child.slice_index,
        created_ts=child.ts, updated_ts=child.ts)
    if order is not None:
        order.children += 1
        _fold(state, order.order_id, child)


def _on_report(state: ProjectionState, report: ExecutionReport) -> None:
    if report.id in state.seen_reports or report.child_id in state.spilled:
        return                          # a copy, or a report of a child already on disk (finished)
    state.seen_reports.set(report.id, report.ts, report.ts)
    model = state.models.get(report.order_id)
    row = state.children.get(report.child_id)
    # The model's child when its order is known; else one as its row (or the report) says, for this fold only.
    if model is not None:
        child = model.children.get(report.child_id) or attach(model, child_of(report))
    else:
        child = child_of(report) if row is None else _child_of_row(row)
    if is_fill(child, report):
        assert report.last_price is not None
        state.fills.append(FillRow(
            report_id=report.id, order_id=report.order_id, child_id=report.child_id, account=_i(report.account),
            venue=_i(report.venue), symbol=_i(report.symbol), side=_i(report.side), quantity=report.last_quantity,
            price=report.last_price, fee=report.fee,
            liquidity=None if report.liquidity is None else _i(report.liquidity), ts=report.ts))
        key = (report.account, report.symbol)
        position = state.positions.get(key) or Position(account=report.account, symbol=report.symbol)
        state.positions[key] = apply_fill(position, report.side, report.last_quantity, report.last_price,
                                          report.fee, report.ts)
        _record_pnl(state, report.account, report.ts)
    if model is not None:
        _fold(state, report.order_id, report)
    else:
        fold_child(child, report)
    if row is not None:
        row.status = _i(child.status)
        row.cum_quantity = child.cum_quantity
        row.updated_ts = report.ts


def _mark(state: ProjectionState, symbol: str, price: Decimal, ts: int) -> None:
    state.marks[symbol] = (price, ts)
    for account in {account for account, held in state.positions if held == symbol}:
        if ts - state.last_pnl_ts.get(account, 0) >= PNL_MARK_INTERVAL_NS:
            _record_pnl(state, account, ts)


def _record_pnl(state: ProjectionState, account: str, ts: int) -> None:
    realized = unrealized = fees = ZERO
    for (held_account, symbol), position in state.positions.items():
        if held_account != account:
            continue
        realized += position.realized_pnl
        fees += position.fees
        mark = state.marks.get(symbol)
        if mark is not None:
            unrealized += position.unrealized_pnl(mark[0])
    state.pnl.append(PnlPoint(account=_i(account), ts=ts, realized_pnl=realized, unrealized_pnl=unrealized, fees=fees,
                              net_pnl=realized + unrealized - fees))
    state.last_pnl_ts[account] = ts
