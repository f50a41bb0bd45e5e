"""Row types of the read models: one msgspec Struct per table row, the unit both Arrow and Parquet use."""

from __future__ import annotations

from decimal import Decimal

import msgspec

ZERO = Decimal(0)


class OrderRow(msgspec.Struct, kw_only=True):
    """A parent order and where it stands: decision, fills, children."""

    order_id: str
    account: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    algo: str
    time_in_force: str
    strategy: str | None
    status: str
    accepted: bool | None = None
    reasons: str = ""
    filled_quantity: Decimal = ZERO
    notional: Decimal = ZERO
    avg_price: Decimal | None = None
    fees: Decimal = ZERO
    children: int = 0
    working_children: int = 0
    cancel_requested: bool = False
    created_ts: int = 0
    updated_ts: int = 0
    # From the router's ParentOrderCompleted: how the order ended and what it cost.
    completed: bool = False
    end_reason: str | None = None
    arrival_price: Decimal | None = None
    shortfall_bps: Decimal | None = None
    vwap_slippage_bps: Decimal | None = None


class ChildRow(msgspec.Struct, kw_only=True):
    """A child order at a venue."""

    child_id: str
    order_id: str
    account: str
    venue: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    status: str
    cum_quantity: Decimal = ZERO
    slice_index: int = 0
    created_ts: int = 0
    updated_ts: int = 0


class FillRow(msgspec.Struct, kw_only=True):
    """One execution: a PARTIAL or FILLED report's last quantity and price."""

    report_id: str
    order_id: str
    child_id: str
    account: str
    venue: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str | None
    ts: int


class DecisionRow(msgspec.Struct, kw_only=True):
    """A risk decision with its failed checks."""

    decision_id: str
    order_id: str
    account: str
    symbol: str
    accepted: bool
    failed_checks: str
    reasons: str
    checks_run: int
    ts: int


class CandleRow(msgspec.Struct, kw_only=True):
    """An OHLCV bar as published by the aggregator or a venue."""

    venue: str
    symbol: str
    interval: str
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int


class TopRow(msgspec.Struct, kw_only=True):
    """The latest book top per venue and symbol."""

    venue: str
    symbol: str
    ts: int
    last_update_id: int
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    imbalance: float | None


class AuditRow(msgspec.Struct, kw_only=True):
    """Where one event of an order's life sits in the log."""

    order_id: str
    account: str
    stream: str
    seq: int
    stored_ts: int
    event_ts: int
    event_type: str
    event_id: str
    subject: str
    causation_id: str | None


class PositionRow(msgspec.Struct, kw_only=True):
    """A position with its mark and P&L (derived from processors.positions.Position plus the last price)."""

    account: str
    symbol: str
    quantity: Decimal
    avg_price: Decimal | None
    cost: Decimal
    realized_pnl: Decimal
    fees: Decimal
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    net_pnl: Decimal | None
    fills: int
    updated_ts: int


class PnlPoint(msgspec.Struct, kw_only=True):
    """An account's P&L at one moment (after a fill, or at most once a minute of marks)."""

    account: str
    ts: int
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
