"""The order and position book: parent orders, working children and positions, from order-path events.

`evolve(book, event)` is deterministic and reads no clock; it updates the book in place and
returns it. A book is owned by one core loop: copying a day of orders on every event would
cost more than the risk check it serves. Call `book.copy()` for a snapshot.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import msgspec

from events.control import KillSwitchEngaged
from events.trading import CancelIntent, ChildOrder, ExecutionReport, OrderIntent, RiskDecision
from processors.positions._position import EXACT, ZERO, Position, apply_fill
from processors.recent import Recent

# Parents the router works as one child: when that child is done, the parent is done.
_SINGLE_CHILD_ALGOS = frozenset({"MARKET", "LIMIT"})
_TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED"})


class ParentOrder(msgspec.Struct, kw_only=True):
    """An accepted order intent still being worked: what is left of it and how many children it has out."""

    order_id: str
    account: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    algo_kind: str
    client_order_id: str
    ts: int
    filled: Decimal = ZERO
    working_children: int = 0

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return max(ZERO, EXACT.subtract(self.quantity, self.filled))


class WorkingChild(msgspec.Struct, kw_only=True):
    """A child order at a venue that has not reached FILLED, CANCELLED or REJECTED."""

    child_id: str
    order_id: str
    account: str
    venue: str
    symbol: str
    side: str
    quantity: Decimal
    cum_quantity: Decimal = ZERO


class Book:
    """Positions per (account, symbol), open parents and working children, with indexes the risk checks need."""

    __slots__ = ("positions", "parents", "children", "done_children", "pending", "open_by_account",
                 "open_buy", "open_sell", "coid_index")

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], Position] = {}
        self.parents: dict[str, ParentOrder] = {}
        self.children: dict[str, WorkingChild] = {}
        # Children that are done, while a redelivered report can still arrive (processors.recent):
        # it must not refill.
        self.done_children: Recent[str, None] = Recent()
        # Intents seen but not yet decided: opened as parents when an accepting decision arrives.
        self.pending: dict[str, OrderIntent] = {}
        self.open_by_account: dict[str, set[str]] = {}
        # Unfilled quantity of open parents per (account, symbol) and side: the worst-case projection.
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
        """Number of open parent orders of the account."""
        found = self.open_by_account.get(account)
        return len(found) if found else 0

    def working_children_of(self, account: str | None) -> list[WorkingChild]:
        """Working children of one account (or all when None), in a stable order (by child id)."""
        return sorted((c for c in self.children.values() if account is None or c.account == account),
                      key=lambda c: c.child_id)

    # --- transitions -------------------------------------------------------------------------

    def open_parent(self, intent: OrderIntent) -> None:
        """Count an accepted intent as an open parent order."""
        if intent.id in self.parents:
            return
        key = (intent.account, intent.symbol)
        self.parents[intent.id] = ParentOrder(
            order_id=intent.id, account=intent.account, symbol=intent.symbol, side=intent.side,
            quantity=intent.quantity, limit_price=intent.limit_price, algo_kind=intent.algo_kind,
            client_order_id=intent.client_order_id, ts=intent.ts)
        self.open_by_account.setdefault(intent.account, set()).add(intent.id)
        side_book = self.open_buy if intent.side == "BUY" else self.open_sell
        side_book[key] = side_book.get(key, ZERO) + intent.quantity
        self.coid_index[(intent.account, intent.client_order_id)] = intent.id

    def _reduce_open(self, parent: ParentOrder, quantity: Decimal) -> None:
        key = (parent.account, parent.symbol)
        side_book = self.open_buy if parent.side == "BUY" else self.open_sell
        left = side_book.get(key, ZERO) - quantity
        if left > 0:
            side_book[key] = left
        else:
            side_book.pop(key, None)

    def close_parent(self, order_id: str) -> ParentOrder | None:
        """Stop counting a parent as open (filled, cancelled, or its account killed)."""
        parent = self.parents.pop(order_id, None)
        if parent is None:
            return None
        self._reduce_open(parent, parent.remaining)
        opened = self.open_by_account.get(parent.account)
        if opened is not None:
            opened.discard(order_id)
            if not opened:
                del self.open_by_account[parent.account]
        self.coid_index.pop((parent.account, parent.client_order_id), None)
        return parent

    def _on_child(self, child: ChildOrder) -> None:
        if child.child_id in self.children or child.child_id in self.done_children:
            return
        self.children[child.child_id] = WorkingChild(
            child_id=child.child_id, order_id=child.order_id, account=child.account, venue=child.venue,
            symbol=child.symbol, side=child.side, quantity=child.quantity)
        parent = self.parents.get(child.order_id)
        if parent is not None:
            parent.working_children += 1

    def _on_report(self, report: ExecutionReport) -> None:
        if report.child_id in self.done_children:
            return
        child = self.children.get(report.child_id)
        if child is None:
            # A report for a child we never saw sent (book rebuilt from mid-stream): track it from here.
            child = WorkingChild(child_id=report.child_id, order_id=report.order_id, account=report.account,
                                 venue=report.venue, symbol=report.symbol, side=report.side,
                                 quantity=EXACT.add(report.cum_quantity, report.leaves_quantity))
            self.children[report.child_id] = child
            parent = self.parents.get(report.order_id)
            if parent is not None:
                parent.working_children += 1
        parent = self.parents.get(report.order_id)
        filled = (report.status in ("PARTIAL", "FILLED") and report.last_quantity > 0
                  and report.last_price is not None and report.cum_quantity > child.cum_quantity)
        if filled:
            assert report.last_price is not None
            key = (report.account, report.symbol)
            self.positions[key] = apply_fill(self.position(*key), report.side, report.last_quantity,
                                             report.last_price, report.fee, report.ts)
            child.cum_quantity = report.cum_quantity
            if parent is not None:
                fill = min(report.last_quantity, parent.remaining)
                parent.filled = EXACT.add(parent.filled, report.last_quantity)
                self._reduce_open(parent, fill)
        if report.status in _TERMINAL:
            del self.children[report.child_id]
            self.done_children.add(report.child_id, report.ts)
            if parent is not None:
                parent.working_children -= 1
                if parent.remaining <= 0 or (parent.algo_kind in _SINGLE_CHILD_ALGOS
                                             and parent.working_children <= 0):
                    self.close_parent(parent.order_id)
        elif parent is not None and parent.remaining <= 0:
            self.close_parent(parent.order_id)

    def _on_cancel(self, cancel: CancelIntent) -> None:
        order_id = cancel.order_id or self.coid_index.get((cancel.account, cancel.client_order_id or ""))
        if order_id is not None:
            parent = self.parents.get(order_id)
            if parent is not None and parent.account == cancel.account:
                self.close_parent(order_id)


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
                book.open_parent(intent)
        case CancelIntent():
            book._on_cancel(event)
        case KillSwitchEngaged(account=account):
            # The router stops working every parent of a killed account; so do we.
            for order_id in [o for o, p in book.parents.items() if account is None or p.account == account]:
                book.close_parent(order_id)
    return book
