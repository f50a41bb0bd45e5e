"""P&L attribution by symbol and by strategy tag, from order intents and fills.

Each fill is booked twice with the exact position arithmetic of `processors.positions`: into the
account's position in the symbol, and into a sub-position of (strategy, symbol), the strategy
being the tag of the intent the fill belongs to ("untagged" when none). Net P&L is a cash flow,
so the strategies' net P&L in a symbol always sums to the symbol's; realized and unrealized can
split differently, because two strategies' opposite trades are separate lots to each of them.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from events.trading import ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision
from processors.positions import EXACT, Position, apply_fill
from processors.recent import Recent

UNTAGGED = "untagged"
ZERO = Decimal(0)


class MissingMark(LookupError):
    """An open position needs a mark to value it; `symbol` and `quantity` are attributes."""

    def __init__(self, symbol: str, quantity: Decimal) -> None:
        super().__init__(f"marks.{symbol} is missing; the open position of {quantity} needs a mark")
        self.symbol = symbol
        self.quantity = quantity


class AttributionRow(msgspec.Struct, frozen=True, kw_only=True):
    """P&L of one bucket (a symbol, or a strategy, or a strategy in a symbol) at given marks."""

    key: str
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    fills: int


class Attribution:
    """Positions per symbol and per (strategy, symbol) of one account, fed events through `evolve`."""

    __slots__ = ("account", "strategy_of", "by_symbol", "by_strategy", "_seen_fills")

    def __init__(self, account: str) -> None:
        self.account = account
        self.strategy_of: dict[str, str] = {}
        self.by_symbol: dict[str, Position] = {}
        self.by_strategy: dict[tuple[str, str], Position] = {}
        # (child id, cumulative quantity) of fills applied, while a copy can still arrive
        # (processors.recent): a copy must not count twice.
        self._seen_fills: Recent[tuple[str, Decimal], None] = Recent()

    def evolve(self, event: object) -> Attribution:
        """Fold one event (intents give tags, fills move positions, an order's end drops its tag); others are ignored."""
        match event:
            case OrderIntent(account=account) if account == self.account:
                self.strategy_of[event.id] = event.strategy or UNTAGGED
            case ExecutionReport(account=account) if account == self.account:
                self._on_fill(event)
            case ParentOrderCompleted(account=account) | RiskDecision(account=account, accepted=False) \
                    if account == self.account:
                self.strategy_of.pop(event.order_id, None)
        return self

    def _on_fill(self, report: ExecutionReport) -> None:
        if report.last_quantity <= 0 or report.last_price is None or report.status not in ("PARTIAL", "FILLED"):
            return
        key = (report.child_id, report.cum_quantity)
        if key in self._seen_fills:
            return
        self._seen_fills.add(key, report.ts)
        strategy = self.strategy_of.get(report.order_id, UNTAGGED)
        symbol = report.symbol
        fill = (report.side, report.last_quantity, report.last_price, report.fee, report.ts)
        self.by_symbol[symbol] = apply_fill(self.by_symbol.get(symbol) or Position(account=self.account,
                                                                                   symbol=symbol), *fill)
        bucket = (strategy, symbol)
        self.by_strategy[bucket] = apply_fill(self.by_strategy.get(bucket) or Position(account=self.account,
                                                                                       symbol=symbol), *fill)

    @staticmethod
    def _row(key: str, positions: list[Position], marks: dict[str, Decimal]) -> AttributionRow:
        realized = unrealized = fees = ZERO
        fills = 0
        for p in positions:
            realized = EXACT.add(realized, p.realized_pnl)
            fees = EXACT.add(fees, p.fees)
            fills += p.fills
            if p.quantity:
                mark = marks.get(p.symbol)
                if mark is None:
                    raise MissingMark(p.symbol, p.quantity)
                unrealized = EXACT.add(unrealized, p.unrealized_pnl(mark))
        net = EXACT.subtract(EXACT.add(realized, unrealized), fees)
        return AttributionRow(key=key, realized_pnl=realized, unrealized_pnl=unrealized, fees=fees, net_pnl=net,
                              fills=fills)

    def by_symbol_rows(self, marks: dict[str, Decimal]) -> list[AttributionRow]:
        """P&L per symbol at `marks`, sorted by symbol."""
        return [self._row(s, [p], marks) for s, p in sorted(self.by_symbol.items())]

    def by_strategy_rows(self, marks: dict[str, Decimal]) -> list[AttributionRow]:
        """P&L per strategy tag (all its symbols) at `marks`, sorted by tag."""
        tags = sorted({tag for tag, _ in self.by_strategy})
        return [self._row(tag, [p for (t, _), p in sorted(self.by_strategy.items()) if t == tag], marks)
                for tag in tags]

    def by_strategy_and_symbol_rows(self, marks: dict[str, Decimal]) -> list[AttributionRow]:
        """P&L per (strategy, symbol) at `marks`, keyed `strategy/symbol`."""
        return [self._row(f"{t}/{s}", [p], marks) for (t, s), p in sorted(self.by_strategy.items())]
