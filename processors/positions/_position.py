"""One account's position in one symbol, and the exact arithmetic that applies a fill to it."""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

import msgspec

# Every money operation goes through this context: 80 digits hold any product of two event
# decimals (each < 1e15 with <= 12 places, so <= 27 digits), and trapping Inexact turns any
# silent rounding into an error instead of a drift in the books.
EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# The one inexact step: the cost basis released by a partial close (cost * closed / open).
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
RELEASE_QUANTUM = Decimal("1e-12")
ZERO = Decimal(0)


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A signed quantity with its cost basis, realized P&L and fees, for one account and symbol.

    `cost` is the signed cost basis of the open quantity (positive long, negative short:
    the proceeds a short was opened for), kept as a sum so that realized + unrealized
    always equals the cash-flow P&L exactly. The average price is derived from it.
    """

    account: str
    symbol: str
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    cash: Decimal = ZERO
    fills: int = 0
    last_ts: int = 0

    @property
    def avg_price(self) -> Decimal | None:
        """Average cost of the open quantity (None when flat), rounded to 12 places for display."""
        if not self.quantity:
            return None
        return _ROUNDING.divide(self.cost, self.quantity).quantize(RELEASE_QUANTUM, context=_ROUNDING)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """P&L of the open quantity if it were closed at `mark` (fees excluded)."""
        return EXACT.subtract(EXACT.multiply(self.quantity, mark), self.cost)

    def market_value(self, mark: Decimal) -> Decimal:
        """Signed value of the open quantity at `mark`."""
        return EXACT.multiply(self.quantity, mark)

    def net_pnl(self, mark: Decimal) -> Decimal:
        """Realized plus unrealized at `mark`, minus fees paid."""
        return EXACT.subtract(EXACT.add(self.realized_pnl, self.unrealized_pnl(mark)), self.fees)


def signed(side: str, quantity: Decimal) -> Decimal:
    """The quantity with the sign of `side`: positive for BUY, negative for SELL."""
    return quantity if side == "BUY" else -quantity


def _released_cost(cost: Decimal, closed: Decimal, open_quantity: Decimal) -> Decimal:
    """The share of `cost` that closing `closed` of `open_quantity` (same sign) releases.

    Always rounded to RELEASE_QUANTUM (unless everything closes): an exact quotient can carry
    many digits, and repeated partial closes would grow the cost basis past any fixed precision.
    Whatever the rounding leaves stays in the cost basis, so realized + unrealized still equals
    the cash flows exactly.
    """
    if closed == open_quantity:
        return cost
    numerator = EXACT.multiply(cost, closed)
    return _ROUNDING.divide(numerator, open_quantity).quantize(RELEASE_QUANTUM, context=_ROUNDING)


def apply_fill(position: Position, side: str, quantity: Decimal, price: Decimal,
               fee: Decimal = ZERO, ts: int = 0) -> Position:
    """The position after a fill of `quantity` at `price`: closes against the open side first, then opens.

    A fill larger than the open quantity on the other side flips the position through zero:
    the closing part realizes P&L against the old cost basis, the rest opens at `price`.
    """
    fill = signed(side, quantity)
    q = position.quantity
    cost = position.cost
    realized = position.realized_pnl
    if q and (q > 0) != (fill > 0):
        # Closing part: at most the open quantity, with the fill's sign.
        closing = fill if abs(fill) <= abs(q) else -q
        released = _released_cost(cost, -closing, q)
        realized = EXACT.subtract(EXACT.add(realized, EXACT.multiply(-closing, price)), released)
        cost = EXACT.subtract(cost, released)
        q = EXACT.add(q, closing)
        opening = EXACT.subtract(fill, closing)
    else:
        opening = fill
    if opening:
        cost = EXACT.add(cost, EXACT.multiply(opening, price))
        q = EXACT.add(q, opening)
    if not q:
        cost = ZERO
    buy = side == "BUY"
    return msgspec.structs.replace(
        position,
        quantity=q,
        cost=cost,
        realized_pnl=realized,
        fees=EXACT.add(position.fees, fee),
        bought=EXACT.add(position.bought, quantity) if buy else position.bought,
        sold=position.sold if buy else EXACT.add(position.sold, quantity),
        cash=EXACT.subtract(EXACT.subtract(position.cash, EXACT.multiply(fill, price)), fee),
        fills=position.fills + 1,
        last_ts=max(position.last_ts, ts),
    )
