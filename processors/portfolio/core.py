"""The portfolio manager's pure core: `decide(state, event) -> [events]` and `evolve(state, event) -> state`.

No I/O and no clock: time is the `ts` of the event being handled.

Inputs and outputs:
- TargetWeightsSet → RebalanceProposed and one ordinary OrderIntent per trade (they pass risk
  like any other intent), or a DeadLetter naming why the rebalance could not be sized;
- ExecutionReport, OrderIntent, RiskDecision, ChildOrder, CancelIntent → positions (the shared
  `processors.positions` book) and P&L attribution by symbol and strategy tag;
- TradeSummary (or a single Trade) / BookTop → marks (last trade; mid of the top when both sides are present).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from events._base import Event
from events.audit import DeadLetter
from events.codec import encode
from events.ids import derived_id
from events.market import BookTop, Trade, TradeSummary
from events.portfolio import TargetWeightsSet, VenuePositionsReported
from events.subjects import subject_for
from events.trading import ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision
from processors.portfolio.attribution import Attribution
from processors.portfolio.rebalance import RebalanceConfig, RebalanceRefused, rebalance
from processors.portfolio.reconcile import reconcile
from processors.positions import EXACT, Book, signed
from processors.positions.book import evolve as evolve_book
from processors.recent import Recent

ROLE_DEAD_LETTER = "portfolio-dead-letter"
ZERO = Decimal(0)
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 2  # 2: the book keeps the shared order model (processors.orders)
# Targets, fills and venue positions from the order path; marks from trade summaries and book tops.
# Targets and venue positions of sq.pf (not its own proposals and breaks); of sq.ctl, the kill switch the book folds.
SUBSCRIPTIONS = ("sq.ord.>", "sq.risk.>", "sq.exec.>", "sq.pf.targets.>", "sq.pf.venuepos.>", "sq.ctl.killswitch.>",
                 "sq.md.summary.>", "sq.md.top.>")


class PortfolioConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Starting capital per account (the cash that fills then move) and the rebalancing rules."""

    capital: dict[str, Decimal] = {}
    rebalance: RebalanceConfig = RebalanceConfig()

    def validate(self) -> list[str]:
        """Every bad field at once."""
        problems = [f"capital.{a} {c} must not be negative" for a, c in self.capital.items() if c < 0]
        return problems + [f"rebalance.{p}" for p in self.rebalance.validate()]


class PortfolioState:
    """Positions, marks and attribution the portfolio manager keeps, rebuilt from the log on start."""

    __slots__ = ("config", "book", "marks", "attribution", "at_venue", "reports_seen")

    def __init__(self, config: PortfolioConfig | None = None) -> None:
        self.config = config or PortfolioConfig()
        self.book = Book()
        self.marks: dict[str, Decimal] = {}
        self.attribution: dict[str, Attribution] = {}
        # Signed filled quantity per (account, venue, symbol): what each venue should report we hold.
        self.at_venue: dict[tuple[str, str, str], Decimal] = {}
        self.reports_seen: Recent[str, None] = Recent()      # report ids, while a copy can still arrive

    def held_at(self, account: str, venue: str) -> dict[str, Decimal]:
        """Quantity per symbol that our fills at `venue` add up to for the account."""
        return {symbol: quantity for (owner, where, symbol), quantity in self.at_venue.items()
                if owner == account and where == venue}

    def holdings(self, account: str) -> dict[str, Decimal]:
        """Quantity per symbol of the account from fills."""
        return {p.symbol: p.quantity for p in self.book.positions_of(account) if p.quantity}

    def in_flight(self, account: str) -> dict[str, Decimal]:
        """Signed quantity per symbol of intents awaiting risk and the unfilled rest of accepted ones."""
        flight: dict[str, Decimal] = {}
        for (owner, symbol), quantity in self.book.open_buy.items():
            if owner == account:
                flight[symbol] = flight.get(symbol, ZERO) + quantity
        for (owner, symbol), quantity in self.book.open_sell.items():
            if owner == account:
                flight[symbol] = flight.get(symbol, ZERO) - quantity
        for intent in self.book.pending.values():
            if intent.account == account:
                flight[intent.symbol] = flight.get(intent.symbol, ZERO) + signed(intent.side, intent.quantity)
        return {symbol: quantity for symbol, quantity in flight.items() if quantity}

    def cash(self, account: str) -> Decimal:
        """Starting capital plus every fill's cash flow (proceeds minus costs and fees)."""
        total = self.config.capital.get(account, ZERO)
        for position in self.book.positions_of(account):
            total = EXACT.add(total, position.cash)
        return total


def decide(state: PortfolioState, event: object) -> list[Event]:
    """The events a target-weights change causes; nothing for any other input."""
    match event:
        case TargetWeightsSet(account=account):
            # Orders in flight count as filled at the mark (quantity in, its cost out of cash, equity
            # unchanged), so a second target arriving before the first rebalance fills does not
            # order the same trade again.
            held = state.holdings(account)
            cash = state.cash(account)
            for symbol, quantity in state.in_flight(account).items():
                held[symbol] = held.get(symbol, ZERO) + quantity
                mark = state.marks.get(symbol)
                if mark is not None:
                    cash = EXACT.subtract(cash, EXACT.multiply(quantity, mark))
            try:
                return rebalance(event, {s: q for s, q in held.items() if q}, state.marks, cash,
                                 state.config.rebalance)
            except RebalanceRefused as exc:
                return [DeadLetter(id=derived_id(event.id, ROLE_DEAD_LETTER), ts=event.ts, causation_id=event.id,
                                   correlation_id=event.id, source="portfolio", subject=subject_for(event),
                                   reason=str(exc), payload=encode(event).decode())]
        case VenuePositionsReported(account=account, venue=venue, positions=reported):
            breaks: list[Event] = list(reconcile(account, venue, state.held_at(account, venue), reported,
                                                 cause_id=event.id, ts=event.ts))
            return breaks
    return []


def evolve(state: PortfolioState, event: object) -> PortfolioState:
    """Fold one event into positions, marks and attribution."""
    match event:
        case Trade(symbol=symbol, price=price) | TradeSummary(symbol=symbol, price=price):
            state.marks[symbol] = price
        case BookTop(symbol=symbol, bid_price=bid, ask_price=ask) if bid is not None and ask is not None:
            state.marks[symbol] = EXACT.divide(EXACT.add(bid, ask), Decimal(2))
        case OrderIntent(account=account) | ExecutionReport(account=account) | ParentOrderCompleted(account=account) \
                | RiskDecision(account=account):
            if isinstance(event, ExecutionReport) and event.last_quantity and event.id not in state.reports_seen:
                state.reports_seen.add(event.id, event.ts)
                key = (account, event.venue, event.symbol)
                state.at_venue[key] = state.at_venue.get(key, ZERO) + signed(event.side, event.last_quantity)
            attribution = state.attribution.get(account)
            if attribution is None:
                attribution = state.attribution[account] = Attribution(account)
            attribution.evolve(event)
            evolve_book(state.book, event)
        case _:
            evolve_book(state.book, event)
    return state
