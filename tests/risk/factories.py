"""Builders for risk and position tests: events with sensible defaults and a state with given limits."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec

from events import (
    BookTop,
    ChildOrder,
    ExecutionReport,
    KillSwitchEngaged,
    OrderIntent,
    Trade,
    derived_id,
)
from processors.risk import RiskState, parse_limits
from tests.cores import risk_step as step

T0 = 1_700_000_000_000_000_000   # 2023-11-14T22:13:20Z
SECOND = 1_000_000_000
_ids = itertools.count()


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def next_id(prefix: str = "e") -> str:
    return f"{prefix}-{next(_ids)}"


def state_with(defaults: dict[str, Any] | None = None, **file: Any) -> RiskState:
    """A risk state whose limits file has these defaults (and any other file sections)."""
    body = {"defaults": defaults or {}, **file}
    return RiskState(parse_limits(msgspec.json.encode(body)))


def intent(account: str = "ACC1", symbol: str = "BTCUSDT", side: str = "BUY", quantity: str | Decimal = "1",
           limit_price: str | Decimal | None = "100", ts: int = T0, **extra: Any) -> OrderIntent:
    event_id = extra.pop("id", None) or next_id("intent")
    return OrderIntent(id=event_id, ts=ts, account=account, client_order_id=extra.pop("client_order_id", event_id),
                       symbol=symbol, side=side, quantity=D(quantity),  # type: ignore[arg-type]
                       limit_price=None if limit_price is None else D(limit_price), **extra)


def book_top(bid: str, ask: str, symbol: str = "BTCUSDT", ts: int = T0) -> BookTop:
    return BookTop(id=next_id("top"), ts=ts, venue="SIM", symbol=symbol, last_update_id=1, bid_price=D(bid),
                   bid_size=D(1), ask_price=D(ask), ask_size=D(1))


def trade(price: str, symbol: str = "BTCUSDT", ts: int = T0, quantity: str = "1") -> Trade:
    return Trade(id=next_id("trade"), ts=ts, venue="SIM", symbol=symbol, price=D(price), quantity=D(quantity))


def child(order: OrderIntent, quantity: str | None = None, index: int = 0, venue: str = "SIM") -> ChildOrder:
    return ChildOrder(id=next_id("child"), ts=order.ts, order_id=order.id,
                      child_id=derived_id(order.id, "child", index), account=order.account, venue=venue,
                      symbol=order.symbol, side=order.side, quantity=D(quantity) if quantity else order.quantity,
                      limit_price=order.limit_price, slice_index=index)


def report(child_order: ChildOrder, status: str, last_quantity: str = "0", last_price: str | None = None,
           cum: str = "0", fee: str = "0", ts: int | None = None) -> ExecutionReport:
    return ExecutionReport(
        id=next_id("report"), ts=ts or child_order.ts, order_id=child_order.order_id, child_id=child_order.child_id,
        account=child_order.account, venue=child_order.venue, symbol=child_order.symbol, side=child_order.side,
        status=status,  # type: ignore[arg-type]
        last_quantity=D(last_quantity), last_price=None if last_price is None else D(last_price),
        cum_quantity=D(cum), leaves_quantity=max(D(0), child_order.quantity - D(cum)), fee=D(fee))


def kill(account: str | None = "ACC1", ts: int = T0) -> KillSwitchEngaged:
    return KillSwitchEngaged(id=next_id("kill"), ts=ts, account=account, actor="ops", reason="test")


def run(state: RiskState, *events: object) -> list[object]:
    """Step every event through the core; return all outputs."""
    out: list[object] = []
    for event in events:
        state, produced = step(state, event)
        out += produced
    return out


def fill(state: RiskState, account: str, symbol: str, side: str, quantity: str, price: str,
         ts: int = T0, fee: str = "0") -> list[object]:
    """Accept-free path to a position: a child and its full fill (the parent need not exist)."""
    parent = intent(account=account, symbol=symbol, side=side, quantity=quantity, limit_price=price, ts=ts)
    sent = child(parent)
    return run(state, sent, report(sent, "FILLED", quantity, price, cum=quantity, fee=fee, ts=ts))
