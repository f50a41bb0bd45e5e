"""One order model: a parent order, its child orders and one status machine, folded by `apply(order, event)`.

Risk and portfolio (processors.positions.book), the router (processors.router.state) and the read
models all keep an order's state with these types and this fold, so there is one rule for what a
venue report does to a child and for when an order is done (NautilusTrader's `Order.apply`).

Parent status::

    PENDING_RISK ─► ACCEPTED ─► WORKING ─► PARTIALLY_FILLED ─► FILLED
         │                          └──────────┴──────────► CANCELLED | EXPIRED
         └─► REJECTED

A terminal status (FILLED, CANCELLED, EXPIRED, REJECTED) is absorbing: nothing moves an order out
of it. ACCEPTED comes from the RiskDecision; WORKING from the first child; a fill makes it
PARTIALLY_FILLED, or FILLED once the filled quantity reaches the quantity. With nothing working it
is CANCELLED once it was asked to stop (a cancel intent, the kill switch), or EXPIRED once the last
slice of its schedule was sent; the router's ParentOrderCompleted, which applies the same rule
(`completion`), is the final word.

A child's status is its venue's last word (ExecStatus, NEW before the first report); FILLED,
CANCELLED and REJECTED are absorbing, so a late or redelivered report of a finished child changes
nothing. A report fills only when it says so (PARTIAL or FILLED, a quantity and a price) and moves
the child's cumulative quantity forward, so a copy of a fill is never counted twice.

`apply` updates the order in place and returns it, as a core's `evolve` does: an order belongs to
one core loop, and copying it per event would cost more than the fold. `copy_order` gives a
separate copy (a core's decide works on one, never on its state).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypeVar

import msgspec

from events.control import KillSwitchEngaged
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    ParentStatus,
    RiskDecision,
)

ZERO = Decimal(0)
OrderStatus = Literal["PENDING_RISK", "ACCEPTED", "WORKING", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED",
                      "REJECTED"]
ChildStatus = Literal["NEW", "ACK", "PARTIAL", "FILLED", "CANCELLED", "REJECTED"]
TERMINAL: frozenset[str] = frozenset({"FILLED", "CANCELLED", "EXPIRED", "REJECTED"})
CHILD_TERMINAL: frozenset[str] = frozenset({"FILLED", "CANCELLED", "REJECTED"})
# Algorithms worked as one slice: their schedule is known from the intent alone.
SINGLE_SLICE = frozenset({"MARKET", "LIMIT"})


class Child(msgspec.Struct, kw_only=True):
    """A child order at a venue, as its venue's reports leave it."""

    child_id: str
    order_id: str
    account: str
    venue: str
    symbol: str
    side: str
    quantity: Decimal
    slice_index: int = 0
    status: ChildStatus = "NEW"
    cum_quantity: Decimal = ZERO
    cancel_sent: bool = False
    reason: str | None = None            # the venue's reason on its last terminal report

    @property
    def done(self) -> bool:
        """Filled, cancelled or rejected: no report changes it any more."""
        return self.status in CHILD_TERMINAL

    @property
    def leaves(self) -> Decimal:
        """What the child may still fill: nothing once it is done."""
        return ZERO if self.done else self.quantity - self.cum_quantity


class Order(msgspec.Struct, kw_only=True):
    """A parent order: what was asked, what is filled, its children and where it stands."""

    order_id: str
    account: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None = None
    algo: str = "MARKET"
    time_in_force: str = "GTC"
    ts: int = 0
    status: OrderStatus = "PENDING_RISK"
    filled: Decimal = ZERO
    notional: Decimal = ZERO             # sum of fill quantity × price
    fees: Decimal = ZERO
    children: dict[str, Child] = {}
    slices: int | None = None            # timed slices in its schedule; None while unknown, 0 for POV
    last_slice: int = -1                 # highest slice index a child was sent for
    stopping: str | None = None          # why it was asked to stop (cancel intent, kill switch)
    end_reason: str | None = None

    @property
    def done(self) -> bool:
        """In a terminal status."""
        return self.status in TERMINAL

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return max(ZERO, self.quantity - self.filled)

    @property
    def working(self) -> list[Child]:
        """Children sent and not yet done, in the order they were sent."""
        return [c for c in self.children.values() if not c.done]

    @property
    def exhausted(self) -> bool:
        """The last slice of a timed schedule has been sent (POV, or an unknown schedule, never runs out)."""
        return bool(self.slices) and self.last_slice >= (self.slices or 0) - 1

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price, None before any fill."""
        return self.notional / self.filled if self.filled else None


def order_of(intent: OrderIntent) -> Order:
    """The order an intent asks for, pending the risk decision."""
    algo = intent.algo_kind
    return Order(order_id=intent.id, account=intent.account, client_order_id=intent.client_order_id,
                 symbol=intent.symbol, side=intent.side, quantity=intent.quantity, limit_price=intent.limit_price,
                 algo=algo, time_in_force=intent.time_in_force, ts=intent.ts,
                 slices=1 if algo in SINGLE_SLICE else None)


def child_of(event: ChildOrder | ExecutionReport) -> Child:
    """A child as its order event describes it, or as a report of one never seen sent does (rebuilt mid-stream)."""
    if isinstance(event, ChildOrder):
        return Child(child_id=event.child_id, order_id=event.order_id, account=event.account, venue=event.venue,
                     symbol=event.symbol, side=event.side, quantity=event.quantity, slice_index=event.slice_index)
    return Child(child_id=event.child_id, order_id=event.order_id, account=event.account, venue=event.venue,
                 symbol=event.symbol, side=event.side, quantity=event.cum_quantity + event.leaves_quantity)


def attach(order: Order, child: Child) -> Child:
    """Count a child as the order's (once), and the slice it was sent for; returns the order's child of that id."""
    if child.child_id not in order.children:
        order.children[child.child_id] = child
        order.last_slice = max(order.last_slice, child.slice_index)
    return order.children[child.child_id]


def is_fill(child: Child, report: ExecutionReport) -> bool:
    """Does this report fill the child (and is it not a copy of a fill already counted)?"""
    return (not child.done and report.status in ("PARTIAL", "FILLED") and report.last_quantity > 0
            and report.last_price is not None and report.cum_quantity > child.cum_quantity)


def fold_child(child: Child, report: ExecutionReport) -> Decimal | None:
    """Apply a venue report to a child: the quantity it filled, or None if the child was already done."""
    if child.done:
        return None
    filled = report.last_quantity if is_fill(child, report) else ZERO
    if filled:
        child.cum_quantity = report.cum_quantity
    child.status = report.status
    if report.status in CHILD_TERMINAL:
        child.reason = report.reason
    return filled


def completion(order: Order) -> tuple[ParentStatus, str | None] | None:
    """Whether the order is finished, and how (filled, cancelled, schedule ran out); None while it works.

    The one rule for "done": the router emits ParentOrderCompleted by it, every fold moves the status by it.
    """
    if order.filled >= order.quantity:
        return "FILLED", None
    if order.working:
        return None
    if order.stopping is not None:
        return "CANCELLED", order.stopping
    if order.exhausted:
        last = next((c.reason for c in reversed(order.children.values()) if c.reason), None)
        left = order.quantity - order.filled
        return "EXPIRED", f"schedule ended with {left} unfilled" + (f" ({last})" if last else "")
    return None


def cancel_reason(cancel: CancelIntent) -> str:
    """Why a cancel intent stops an order, as the order and its completion record it."""
    return f"cancel intent {cancel.id}" + (f": {cancel.reason}" if cancel.reason else "")


def kill_reason(kill: KillSwitchEngaged) -> str:
    """Why the kill switch stops an order."""
    return f"kill switch by {kill.actor}: {kill.reason}"


def _settle(order: Order) -> None:
    """Move the status by what the children and fills now say (never out of a terminal status)."""
    if order.done or order.status == "PENDING_RISK":
        return
    found = completion(order)
    if found is not None:
        order.status, order.end_reason = found
    elif order.filled > 0:
        order.status = "PARTIALLY_FILLED"
    elif order.children:
        order.status = "WORKING"


def _on_report(order: Order, report: ExecutionReport) -> None:
    child = order.children.get(report.child_id) or attach(order, child_of(report))
    filled = fold_child(child, report)
    if not filled:
        return
    assert report.last_price is not None              # is_fill checked it
    order.filled += filled
    order.notional += filled * report.last_price
    order.fees += report.fee


def apply(order: Order, event: object) -> Order:
    """Fold one order-path event about this order into it (in place) and return it.

    The caller routes the event to its order (by order id, or a cancel by client order id) and
    has checked a cancel's account; events of other types leave the order unchanged.
    """
    match event:
        case ExecutionReport():
            _on_report(order, event)
        case ChildOrder():
            attach(order, child_of(event))
        case ChildCancel(child_id=child_id) if child_id in order.children:
            order.children[child_id].cancel_sent = True
        case RiskDecision(accepted=accepted) if order.status == "PENDING_RISK":
            order.status = "ACCEPTED" if accepted else "REJECTED"
        case ParentOrderScheduled(slice_times=times, stopping=stopping):
            order.slices = len(times)
            order.stopping = order.stopping or stopping
            if order.status == "PENDING_RISK":
                order.status = "ACCEPTED"
        case CancelIntent() if not order.done:
            order.stopping = order.stopping or cancel_reason(event)
        case KillSwitchEngaged(account=account) if not order.done and account in (None, order.account):
            order.stopping = order.stopping or kill_reason(event)
        case ParentOrderCompleted(status=status, reason=reason) if not order.done:
            order.status, order.end_reason = status, reason
            return order
        case _:
            return order
    _settle(order)
    return order


OrderT = TypeVar("OrderT", bound=Order)


def copy_order(order: OrderT) -> OrderT:
    """A copy whose children can change without touching the original."""
    other = msgspec.structs.replace(order)
    other.children = {k: msgspec.structs.replace(v) for k, v in order.children.items()}
    return other


__all__ = ["CHILD_TERMINAL", "SINGLE_SLICE", "TERMINAL", "Child", "ChildStatus", "Order", "OrderStatus", "apply",
           "attach", "cancel_reason", "child_of", "completion", "copy_order", "fold_child", "is_fill", "kill_reason",
           "order_of"]
