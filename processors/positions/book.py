"""The order and position book: open orders, working children and positions, from order-path events.

Orders and children are the one order model (processors.orders), folded by its `apply`; the book
adds what risk and the portfolio ask of them: positions, open orders per account, and the unfilled
quantity of open orders per side (the worst-case projection). An order counts as open from its
accepting decision until it is done or asked to stop (a cancel intent, the kill switch): no new
slice is sent after that. Its children are tracked until their venue finishes them, wherever
their order stands, so the kill switch still cancels them and their fills still move positions.

`evolve(book, event)` is deterministic and reads no clock; it updates the book in place and
returns it. A book is owned by one core loop: copying a day of orders on every event would
cost more than the risk check it serves. Call `book.copy()` for a snapshot.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from events.control import KillSwitchEngaged
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
from processors.orders import Child, Order, apply, attach, child_of, fold_child, is_fill, order_of
from processors.positions._position import ZERO, Position, apply_fill
from processors.recent import Recent


class Book:
    """Positions per (account, symbol), open orders and working children, with indexes the risk checks need."""

    __slots__ = ("positions", "orders", "children", "done_children", "pending", "open_by_account",
                 "open_buy", "open_sell", "coid_index")

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], Position] = {}
        self.orders: dict[str, Order] = {}
        self.children: dict[str, Child] = {}
        # Children that are done, while a redelivered report can still arrive (processors.recent):
        # it must not refill.
        self.done_children: Recent[str, None] = Recent()
        # Intents seen but not yet decided: opened as orders when an accepting decision arrives.
        self.pending: dict[str, OrderIntent] = {}
        self.open_by_account: dict[str, set[str]] = {}
        # Unfilled quantity of open orders per (account, symbol) and side: the worst-case projection.
        self.open_buy: dict[tuple[str, str], Decimal] = {}
        self.open_sell: dict[tuple[str, str], Decimal] = {}
        self.coid_index: dict[tuple[str, str], str] = {}

    def copy(self) -> Book:
        """A deep snapshot (tests, what-if checks)."""
        return copy.deepcopy(self)

    def position(self, account: str, symbol: str) -> Position:
        """The position, flat if the account never traded the symbol."""
        found = self.positions.get((account, symbol))
        return found if found is not None else Position(account=account, symbol=symbol)

    def positions_of(self, account: str) -> list[Position]:
        """Every position the account holds or held."""
        return [p for (a, _), p in self.positions.items() if a == account]

    def open_orders(self, account: str) -> int:
        """Number of open orders of the account."""
        found = self.open_by_account.get(account)
        return len(found) if found else 0

    def working_children_of(self, account: str | None) -> list[Child]:
        """Working children of one account (or all when None), in a stable order (by child id)."""
        return sorted((c for c in self.children.values() if account is None or c.account == account),
                      key=lambda c: c.child_id)

    # --- transitions -------------------------------------------------------------------------

    def open_order(self, intent: OrderIntent, decision: RiskDecision) -> None:
        """Count an accepted intent as an open order."""
        if intent.id in self.orders:
            return
        key = (intent.account, intent.symbol)
        self.orders[intent.id] = apply(order_of(intent), decision)
        self.open_by_account.setdefault(intent.account, set()).add(intent.id)
        side_book = self.open_buy if intent.side == "BUY" else self.open_sell
        side_book[key] = side_book.get(key, ZERO) + intent.quantity
        self.coid_index[(intent.account, intent.client_order_id)] = intent.id

    def _reduce_open(self, order: Order, quantity: Decimal) -> None:
        key = (order.account, order.symbol)
        side_book = self.open_buy if order.side == "BUY" else self.open_sell
        left = side_book.get(key, ZERO) - quantity
        if left > 0:
            side_book[key] = left
        else:
            side_book.pop(key, None)

    def close_order(self, order_id: str) -> Order | None:
        """Stop counting an order as open (done, asked to stop, or its account killed)."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        self._reduce_open(order, order.remaining)
        opened = self.open_by_account.get(order.account)
        if opened is not None:
            opened.discard(order_id)
            if not opened:
                del self.open_by_account[order.account]
        self.coid_index.pop((order.account, order.client_order_id), None)
        return order

    def _fold(self, order_id: str | None, event: object) -> None:
        """Apply an event to an open order, and stop counting it once it is done or asked to stop."""
        order = self.orders.get(order_id or "")
        if order is not None:
            apply(order, event)
            if order.done or order.stopping is not None:
                self.close_order(order.order_id)

    def _on_child(self, event: ChildOrder) -> None:
        if event.child_id in self.children or event.child_id in self.done_children:
            return
        order = self.orders.get(event.order_id)
        child = attach(order, child_of(event)) if order is not None else child_of(event)
        if not child.done:
            self.children[event.child_id] = child

    def _on_report(self, report: ExecutionReport) -> None:
        if report.child_id in self.done_children:
            return
        # A report for a child we never saw sent (book rebuilt from mid-stream) is tracked from here.
        child = self.children.get(report.child_id) or self.children.setdefault(report.child_id, child_of(report))
        order = self.orders.get(report.order_id)
        filled = report.last_quantity if is_fill(child, report) else ZERO
        if order is not None:
            attach(order, child)
            self._reduce_open(order, min(filled, order.remaining))
            self._fold(order.order_id, report)
        else:
            fold_child(child, report)
        if filled:
            assert report.last_price is not None                # is_fill checked it
            key = (report.account, report.symbol)
            self.positions[key] = apply_fill(self.position(*key), report.side, filled, report.last_price,
                                             report.fee, report.ts)
        if child.done:
            del self.children[report.child_id]
            self.done_children.add(report.child_id, report.ts)

    def _on_cancel(self, cancel: CancelIntent) -> None:
        order_id = cancel.order_id or self.coid_index.get((cancel.account, cancel.client_order_id or ""))
        order = self.orders.get(order_id or "")
        if order is not None and order.account == cancel.account:
            self._fold(order.order_id, cancel)


def evolve(book: Book, event: object) -> Book:
    """Apply one order-path event to the book; other events leave it unchanged."""
    match event:
        case ExecutionReport():
            book._on_report(event)
        case ChildOrder():
            book._on_child(event)
        case OrderIntent():
            book.pending[event.id] = event
        case RiskDecision(order_id=order_id, accepted=accepted):
            intent = book.pending.pop(order_id, None)
            if accepted and intent is not None:
                book.open_order(intent, event)
        case ParentOrderScheduled(order_id=order_id) | ParentOrderCompleted(order_id=order_id) \
                | ChildCancel(order_id=order_id):
            book._fold(order_id, event)
        case CancelIntent():
            book._on_cancel(event)
        case KillSwitchEngaged(account=account):
            # The router stops working every order of a killed account; so do we.
            for order_id in [o for o, p in book.orders.items() if account is None or p.account == account]:
                book._fold(order_id, event)
    return book
