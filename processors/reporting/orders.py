"""`sq report orders`: the order record of every order event in the WAL, with the fields of MiFID II RTS 24.

One row per order event of the trading stream (intent, cancel, risk decision, child order, child
cancel, execution report, parent completion), in WAL order, each with the fields the Annex of
Commission Delegated Regulation (EU) 2017/580 (RTS 24), Table 2, lists for the record of an order,
named in `RTS24_FIELDS`. Fields that do not apply to this system are listed in `NOT_APPLICABLE`
with the reason (the README repeats both).

Rows are "parent" level (the order a user sent: intent, cancel, decision, completion) or "child"
level (a slice the router sent to a venue: child order, child cancel, execution report); a child
row names its parent in `strategy_linked_order_id`. Money and quantities stay exact decimal text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from events._base import iso_instant_ns
from events.codec import EventDecodeError, decode_for_subject
from events.subjects import STREAM_TRADING
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    RiskDecision,
)
from processors.reporting.core import iso_microseconds
from store.follow import completed, wal_dir
from store.reader import WalReader

OrderEvent = OrderIntent | CancelIntent | RiskDecision | ChildOrder | ChildCancel | ExecutionReport | ParentOrderCompleted
ORDER_EVENT_TYPES = (OrderIntent, CancelIntent, RiskDecision, ChildOrder, ChildCancel, ExecutionReport,
                     ParentOrderCompleted)
# "" too: an intent published straight onto NATS may omit its `type` tag, and the recorder keeps the record type empty.
_TYPE_NAMES = frozenset(t.__name__ for t in ORDER_EVENT_TYPES) | {""}
TradingCapacity = Literal["DEAL", "MTCH", "AOTC"]

# Every column, in order, with the RTS 24 Table 2 field it records (None: provenance, not an RTS 24 field).
RTS24_FIELDS: dict[str, str | None] = {
    "wal_stream": None, "wal_seq": None, "stored_time": None, "event_id": None, "event_type": None,
    "causation_id": None, "level": None,
    "entity_id": "Identification of the entity which submitted the order",
    "client_id": "Client identification code",
    "investment_decision": "Investment decision within firm",
    "execution_decision": "Execution within firm",
    "trading_capacity": "Trading capacity",
    "date_time": "Date and Time",
    "event_ts": None,
    "validity_period": "Validity period",
    "sequence_number": "Sequence number",
    "venue": "Segment MIC code",
    "instrument": "Financial instrument identification code",
    "date_of_receipt": "Date of receipt",
    "order_id": "Order identification code",
    "child_id": None, "venue_order_id": None, "client_order_id": None,
    "order_event": "New order, order modification, order cancellation, order rejections, partial or full execution",
    "order_type": "Type of order",
    "order_type_classification": "Type of order classification",
    "limit_price": "Limit price",
    "transaction_price": "Transaction price",
    "price_notation": "Price notation",
    "buy_sell": "Buy-sell indicator",
    "order_status": "Order status",
    "quantity_notation": "Quantity notation",
    "initial_quantity": "Initial quantity",
    "remaining_quantity": "Remaining quantity including hidden",
    "displayed_quantity": "Displayed quantity",
    "traded_quantity": "Traded quantity",
    "passive_aggressive": "Passive or aggressive indicator",
    "strategy_linked_order_id": "Strategy linked order identification",
    "routing_strategy": "Routing strategy",
    "decision_id": None, "reason": None,
}
COLUMNS = list(RTS24_FIELDS)
# RTS 24 fields with no column, and why (the README's table says the same).
NOT_APPLICABLE: dict[str, str] = {
    "Direct Electronic Access (DEA)": "no client has direct electronic access through ShrivenQuant",
    "Non-executing broker": "orders are not passed through another broker",
    "Liquidity provision activity": "no market-making agreement with a venue",
    "Order restriction": "no SESR/VFAO/VFCR restrictions exist in the order model",
    "Validity period and time": "no good-till-date orders: GTC, IOC, FOK and DAY carry no expiry time",
    "Priority time stamp": "assigned by the venue's matching engine, not reported to members",
    "Priority size": "assigned by the venue's matching engine, not reported to members",
    "Order book code": "venues are named by `venue`; no venue order book codes are held",
    "Additional limit price": "no order type has a second limit price",
    "Stop price": "no stop orders",
    "Pegged limit price": "no pegged orders",
    "Price currency": "instruments carry no currency in the event model (the quote currency is part of the symbol)",
    "Currency of leg 2": "no multi-leg instruments",
    "Quantity currency": "quantities are in units (`quantity_notation` UNIT)",
    "Minimum acceptable quantity (MAQ)": "no minimum-quantity orders",
    "Minimum executable size (MES)": "no minimum-size orders",
    "MES first execution only": "no minimum-size orders",
    "Passive only indicator": "no post-only orders",
    "Self-execution prevention": "no self-match prevention instruction is sent to venues",
    "Trading venue transaction identification code (TVTIC)": "venue reports carry the venue's order id "
                                                              "(`venue_order_id`), not a trade id",
    "Trading phases": "venue-side: which phase the venue's book was in is not reported to members",
    "Indicative auction price": "venue-side auction data, not reported to members",
    "Indicative auction volume": "venue-side auction data, not reported to members",
}
_VALIDITY = {"GTC": "GTCV", "IOC": "IOCV", "FOK": "FOKV", "DAY": "DAVY"}
_SIDE = {"BUY": "BUYI", "SELL": "SELL"}
_LIQUIDITY = {"MAKER": "PASV", "TAKER": "AGRE"}
# Execution report status → (RTS 24 event, order status after it).
_REPORT_EVENT = {"ACK": ("CHMO", "ACTI"), "PARTIAL": ("PARF", "ACTI"), "FILLED": ("FILL", "INAC"),
                 "CANCELLED": ("CAMO", "INAC"), "REJECTED": ("REMO", "INAC")}
_COMPLETION_EVENT = {"FILLED": "FILL", "CANCELLED": "CAME", "EXPIRED": "EXPI"}


class InvalidWindow(ValueError):
    """A --from/--to that is not an ISO-8601 date or time, or an empty window; `value` keeps what was given."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{value!r} {reason}")
        self.value = value
        self.reason = reason


def parse_instant(value: str) -> int:
    """An ISO-8601 date (`2026-12-04`, its midnight) or time (naive means UTC) as ns since the epoch."""
    try:
        return iso_instant_ns(value)
    except ValueError:
        raise InvalidWindow(value, "is not an ISO-8601 date or time (2026-12-04, 2026-12-04T18:30:00Z)") from None


def _text(value: Decimal | None) -> str | None:
    """A decimal as plain digits ("500", not "5E+2"); None kept."""
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


@dataclass(slots=True)
class _Parent:
    """What the export folds of one parent order to fill its rows' fields."""

    intent: OrderIntent
    filled: Decimal = Decimal(0)
    decision_id: str | None = None
    children: dict[str, ChildOrder] = field(default_factory=dict)


@dataclass
class OrderRecords:
    """The fold over the trading stream that turns each order event into its record."""

    entity_id: str | None = None
    trading_capacity: TradingCapacity | None = None
    parents: dict[str, _Parent] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], str] = field(default_factory=dict)
    undecodable: int = 0

    def record(self, event: OrderEvent, *, seq: int, stored_ts: int) -> dict[str, Any]:
        """Fold one order event in (in WAL order) and return its row."""
        parent = self._parent_of(event)
        intent = parent.intent if parent is not None else None
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(wal_stream=STREAM_TRADING.name, wal_seq=seq, stored_time=iso_microseconds(stored_ts),
                   event_id=event.id, event_type=type(event).__name__, causation_id=event.causation_id,
                   entity_id=self.entity_id, trading_capacity=self.trading_capacity,
                   date_time=iso_microseconds(event.ts), event_ts=event.ts, sequence_number=seq,
                   price_notation="MONE", quantity_notation="UNIT")
        if intent is not None:
            algo = intent.algo_kind
            row.update(client_id=intent.account, investment_decision=intent.strategy,
                       execution_decision=f"router:{algo}", validity_period=_VALIDITY[intent.time_in_force],
                       venue=intent.venue, instrument=intent.symbol,
                       date_of_receipt=iso_microseconds(intent.ts)[:10], order_id=intent.id,
                       client_order_id=intent.client_order_id, order_type=algo,
                       order_type_classification="LMTO" if intent.limit_price is not None else None,
                       limit_price=_text(intent.limit_price), buy_sell=_SIDE[intent.side],
                       initial_quantity=_text(intent.quantity), routing_strategy=algo,
                       decision_id=parent.decision_id if parent is not None else None)
            row["remaining_quantity"] = row["displayed_quantity"] = _text(intent.quantity - parent.filled) \
                if parent is not None else None
        self._fill(row, event, parent)
        return row

    def _parent_of(self, event: OrderEvent) -> _Parent | None:
        """The parent order an event belongs to (registering a new intent first)."""
        match event:
            case OrderIntent():
                if event.id not in self.parents:
                    self.parents[event.id] = _Parent(event)
                    self.by_client_id[(event.account, event.client_order_id)] = event.id
                return self.parents[event.id]
            case CancelIntent(order_id=None, account=account, client_order_id=coid) if coid is not None:
                known = self.by_client_id.get((account, coid))
                return self.parents.get(known) if known is not None else None
            case CancelIntent(order_id=order_id) if order_id is not None:
                return self.parents.get(order_id)
            case RiskDecision() | ChildOrder() | ChildCancel() | ExecutionReport() | ParentOrderCompleted():
                return self.parents.get(event.order_id)
        return None

    def _fill(self, row: dict[str, Any], event: OrderEvent, parent: _Parent | None) -> None:
        """The fields that depend on the kind of event."""
        match event:
            case OrderIntent():
                row.update(level="parent", order_event="NEWO", order_status="ACTI")
            case CancelIntent():
                row.update(level="parent", order_event="CAME", order_status="ACTI", reason=event.reason,
                           client_id=event.account, order_id=row["order_id"] or event.order_id,
                           client_order_id=row["client_order_id"] or event.client_order_id)
            case RiskDecision(accepted=accepted):
                if parent is not None and accepted:
                    parent.decision_id = row["decision_id"] = event.id
                reasons = "; ".join(f"{f.check}: {f.reason}" for f in event.failures) or None
                row.update(level="parent", order_event="CHME" if accepted else "REMO",
                           order_status="ACTI" if accepted else "INAC", reason=reasons, client_id=event.account,
                           order_id=event.order_id, instrument=event.symbol)
            case ChildOrder():
                if parent is not None:
                    parent.children[event.child_id] = event
                self._child(row, event.order_id, event.child_id, event.account, event.venue, event.symbol,
                            event.side, parent)
                row.update(order_event="NEWO", order_status="ROUT", validity_period=_VALIDITY[event.time_in_force],
                           order_type="LIMIT" if event.limit_price is not None else "MARKET",
                           order_type_classification="LMTO" if event.limit_price is not None else None,
                           limit_price=_text(event.limit_price), initial_quantity=_text(event.quantity),
                           remaining_quantity=_text(event.quantity), displayed_quantity=_text(event.quantity))
            case ChildCancel():
                self._child(row, event.order_id, event.child_id, event.account, event.venue, None, None, parent)
                row.update(order_event="CAME", order_status="ACTI", reason=event.reason)
            case ExecutionReport():
                self._child(row, event.order_id, event.child_id, event.account, event.venue, event.symbol,
                            event.side, parent)
                kind, status = _REPORT_EVENT[event.status]
                traded = event.last_quantity if event.last_quantity > 0 else None
                if parent is not None and traded is not None:
                    parent.filled += traded
                row.update(order_event=kind, order_status=status, venue_order_id=event.venue_order_id,
                           transaction_price=_text(event.last_price) if traded is not None else None,
                           traded_quantity=_text(traded), remaining_quantity=_text(event.leaves_quantity),
                           displayed_quantity=_text(event.leaves_quantity), reason=event.reason,
                           passive_aggressive=_LIQUIDITY.get(event.liquidity or ""))
            case ParentOrderCompleted():
                remaining = _text(max(Decimal(0), event.quantity - event.filled_quantity))
                row.update(level="parent", order_event=_COMPLETION_EVENT[event.status], order_status="INAC",
                           client_id=event.account, order_id=event.order_id, instrument=event.symbol,
                           buy_sell=_SIDE[event.side], routing_strategy=event.algo, reason=event.reason,
                           remaining_quantity=remaining, displayed_quantity=remaining,
                           transaction_price=_text(event.average_price))

    @staticmethod
    def _child(row: dict[str, Any], order_id: str, child_id: str, account: str, venue: str, symbol: str | None,
               side: str | None, parent: _Parent | None) -> None:
        """The fields every child-level row shares."""
        child = parent.children.get(child_id) if parent is not None else None
        row.update(level="child", client_id=account, venue=venue, order_id=order_id, child_id=child_id,
                   strategy_linked_order_id=order_id)
        if symbol is not None:
            row["instrument"] = symbol
        if side is not None:
            row["buy_sell"] = _SIDE[side]
        if child is not None:
            row.update(initial_quantity=_text(child.quantity), limit_price=_text(child.limit_price),
                       order_type="LIMIT" if child.limit_price is not None else "MARKET",
                       order_type_classification="LMTO" if child.limit_price is not None else None,
                       validity_period=_VALIDITY[child.time_in_force])


def order_records(data_dir: Path, *, from_ts: int | None = None, to_ts: int | None = None,
                  accounts: set[str] | None = None, entity_id: str | None = None,
                  trading_capacity: TradingCapacity | None = None, fold: OrderRecords | None = None,
                  ) -> Iterator[dict[str, Any]]:
    """Rows of the order events in the trading stream's WAL whose event time is in [from_ts, to_ts).

    The whole stream is folded (an order's intent may precede the window); only rows in the
    window (and of `accounts`, when given) are yielded. Undecodable records are counted in `fold`.
    """
    fold = fold if fold is not None else OrderRecords(entity_id=entity_id, trading_capacity=trading_capacity)
    directory = wal_dir(data_dir / "wal", STREAM_TRADING.name)
    if not directory.is_dir():
        return
    reader = WalReader(directory, persist_index=False)
    try:
        for record in reader.records(types=_TYPE_NAMES):
            try:
                event = completed(decode_for_subject(record.subject, record.payload), record.ts)
            except EventDecodeError:
                fold.undecodable += 1  # dead-lettered on arrival; counted so the gap is visible
                continue
            if not isinstance(event, ORDER_EVENT_TYPES):
                continue
            row = fold.record(event, seq=record.seq, stored_ts=record.ts)
            if from_ts is not None and event.ts < from_ts or to_ts is not None and event.ts >= to_ts:
                continue
            if accounts is not None and row["client_id"] not in accounts:
                continue
            yield row
    finally:
        reader.close()


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Write the rows as CSV with a header (None as an empty cell); returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write_parquet(rows: Iterator[dict[str, Any]], path: Path) -> int:
    """Write the rows as one Parquet file (sequence and times as int64, the rest as exact text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    integers = {"wal_seq", "event_ts", "sequence_number"}
    schema = pa.schema([(name, pa.int64() if name in integers else pa.string()) for name in COLUMNS])
    table = pa.Table.from_pylist(list(rows), schema=schema)
    pq.write_table(table, path)
    return table.num_rows


__all__ = ["COLUMNS", "NOT_APPLICABLE", "ORDER_EVENT_TYPES", "RTS24_FIELDS", "InvalidWindow", "OrderRecords",
           "order_records", "parse_instant", "write_csv", "write_parquet"]
