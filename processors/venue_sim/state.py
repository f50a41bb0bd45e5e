"""The simulated venues' state: the books and last trades they mirror, and the child orders they work.

Owned by one core loop and updated in place by `core.evolve`; rebuilt from events on restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events.trading import ChildOrder
from processors.orders import Child, child_of
from processors.recent import Recent
from processors.venue_sim._book import MarketBook
from processors.venue_sim.config import SimConfig

Key = tuple[str, str]                 # (venue, symbol)
Level = tuple[bool, Decimal]          # (bid side?, price)


@dataclass
class SimOrder:
    """A child order a simulated venue holds: what it asked for, when it arrived, and how its reports left it.

    This is the venue's book entry, not the firm's order: it keeps what matching needs (the request
    with its limit and time in force, arrival time and priority). What its reports do to it is the
    shared child fold (processors.orders), so the venue and the firm agree on filled and done.
    """

    child: ChildOrder
    active_ts: int                    # when it reached the venue: order ts + latency
    seq: int                          # arrival order, for time priority
    state: Child = field(init=False)

    def __post_init__(self) -> None:
        self.state = child_of(self.child)

    @property
    def cum(self) -> Decimal:
        """What has filled, by the reports the venue sent."""
        return self.state.cum_quantity

    @property
    def leaves(self) -> Decimal:
        """What is still open."""
        return self.child.quantity - self.cum


@dataclass
class SimState:
    """Everything the simulated venues know, rebuilt from events."""

    config: SimConfig
    books: dict[Key, MarketBook] = field(default_factory=dict)            # by (market venue, symbol)
    last_trades: dict[Key, Decimal] = field(default_factory=dict)         # by (market venue, symbol)
    seen: set[Key] = field(default_factory=set)                           # market data seen for
    # Each market's own clock: the latest time of its trades and book events, by (market venue,
    # symbol). Another symbol's events (or bars) never move it.
    clocks: dict[Key, int] = field(default_factory=dict)
    # Liquidity our own taker fills took from a level, by (sim venue, symbol); a book update of
    # that level replaces it (the venue's new size already reflects whatever traded).
    consumed: dict[Key, dict[Level, Decimal]] = field(default_factory=dict)
    orders: dict[str, SimOrder] = field(default_factory=dict)                # working
    # Children that reached a terminal status, while a redelivered copy can still arrive
    # (processors.recent): a copy must not be filled again.
    finished: Recent[str, None] = field(default_factory=Recent)
    resting: dict[Key, list[str]] = field(default_factory=dict)           # by (sim venue, symbol)
    seq: int = 0

    def clock(self, source: str, symbol: str) -> int:
        """The time of the latest trade or book event of `symbol` at market venue `source` (0 before any)."""
        return self.clocks.get((source, symbol), 0)

    def tick(self, source: str, symbol: str, ts: int) -> None:
        """Move the clock of `symbol` at `source` forward to `ts` (never back)."""
        if ts > self.clocks.get((source, symbol), 0):
            self.clocks[(source, symbol)] = ts

    def book(self, source: str, symbol: str) -> MarketBook | None:
        """The book of `symbol` at market venue `source`, if any data has arrived for it."""
        return self.books.get((source, symbol))


__all__ = ["Key", "SimOrder", "SimState"]
