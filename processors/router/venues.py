"""What the router knows of each venue's market (book tops, last trades) and how it picks a venue.

Venue selection ranks every configured venue that lists the symbol by the all-in price of
sending the child there now:

* the price is the venue's best ask (BUY) or bid (SELL) when the child is marketable there
  (no limit, or the limit reaches the top), paying the taker fee; otherwise the child would
  rest at its limit, paying the maker fee; with no book top the last trade stands in for it;
* fees and latency are both charged as bps of that price: `fee_bps + latency_ms *
  latency_penalty_bps_per_ms` (the penalty prices the adverse move while the child is in flight);
* BUY picks the lowest `price * (1 + cost_bps / 10_000)`, SELL the highest
  `price * (1 - cost_bps / 10_000)`; venues without any price rank last, by cost; ties go to
  the venue listed first in the config.

Top-of-book only: depth beyond the top is not compared (the router sees BookTop events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events.market import BookTop, Trade, TradeSummary
from events.trading import Side
from processors.router.config import RouterConfig, VenueSpec

BPS = Decimal(10_000)
NS_PER_MS = Decimal(1_000_000)
Key = tuple[str, str]            # (market venue, symbol)


@dataclass(frozen=True)
class Quote:
    """A venue's best bid and ask for a symbol (None when a side is empty or unknown)."""

    bid: Decimal | None
    ask: Decimal | None
    ts: int


@dataclass
class MarketView:
    """Latest book top and last trade per (market venue, symbol), from BookTop and TradeSummary (or Trade) events."""

    quotes: dict[Key, Quote] = field(default_factory=dict)
    last_trades: dict[Key, tuple[Decimal, int]] = field(default_factory=dict)

    def apply(self, event: BookTop | Trade | TradeSummary) -> None:
        """Take in a book top, a trade or a summary of trades."""
        match event:
            case BookTop(venue=venue, symbol=symbol):
                self.quotes[(venue, symbol)] = Quote(event.bid_price, event.ask_price, event.ts)
            case Trade(venue=venue, symbol=symbol) | TradeSummary(venue=venue, symbol=symbol):
                self.last_trades[(venue, symbol)] = (event.price, event.ts)

    def quote(self, key: Key, latest: BookTop | Trade | TradeSummary | None = None) -> Quote | None:
        """The quote for `key`, with `latest` (an event not yet applied) taking precedence."""
        if isinstance(latest, BookTop) and (latest.venue, latest.symbol) == key:
            return Quote(latest.bid_price, latest.ask_price, latest.ts)
        return self.quotes.get(key)

    def last_trade(self, key: Key, latest: BookTop | Trade | TradeSummary | None = None) -> tuple[Decimal, int] | None:
        """The last trade price and time for `key`, with `latest` taking precedence."""
        if isinstance(latest, Trade | TradeSummary) and (latest.venue, latest.symbol) == key:
            return latest.price, latest.ts
        return self.last_trades.get(key)


@dataclass(frozen=True)
class Choice:
    """One venue's all-in price for a child: what ranking compared."""

    venue: str
    price: Decimal | None
    cost_bps: Decimal
    marketable: bool
    score: Decimal | None


def candidates(config: RouterConfig, symbol: str, venue: str | None) -> list[VenueSpec]:
    """The venues a child may go to: the one the intent named, else every venue that lists the symbol."""
    if venue is not None:
        return [config.venue(venue) or VenueSpec(name=venue)]
    return [v for v in config.venues if not v.symbols or symbol in v.symbols]


def _choice(config: RouterConfig, spec: VenueSpec, market: MarketView, symbol: str, side: Side,
            limit: Decimal | None, latest: BookTop | Trade | TradeSummary | None) -> Choice:
    key = (spec.source, symbol)
    quote = market.quote(key, latest)
    touch = None if quote is None else (quote.ask if side == "BUY" else quote.bid)
    if touch is None:
        last = market.last_trade(key, latest)
        touch = None if last is None else last[0]
    marketable = touch is not None and (limit is None or (touch <= limit if side == "BUY" else touch >= limit))
    price = touch if marketable else limit
    fee = spec.taker_fee_bps if marketable or price is None else spec.maker_fee_bps
    cost = fee + Decimal(spec.latency_ns) / NS_PER_MS * config.latency_penalty_bps_per_ms
    score = None
    if price is not None:
        score = price * (1 + cost / BPS) if side == "BUY" else price * (1 - cost / BPS)
    return Choice(spec.name, price, cost, marketable, score)


def rank_venues(config: RouterConfig, market: MarketView, symbol: str, side: Side, limit: Decimal | None,
                *, venue: str | None = None, latest: BookTop | Trade | TradeSummary | None = None) -> list[Choice]:
    """Candidate venues best first (see the module docstring for the ranking)."""
    choices = [_choice(config, spec, market, symbol, side, limit, latest)
               for spec in candidates(config, symbol, venue)]
    sign = 1 if side == "BUY" else -1

    def key(item: tuple[int, Choice]) -> tuple[int, Decimal, int]:
        index, choice = item
        if choice.score is None:
            return 1, choice.cost_bps, index
        return 0, sign * choice.score, index

    return [choice for _, choice in sorted(enumerate(choices), key=key)]


def arrival_mid(config: RouterConfig, market: MarketView, symbol: str, venue: str | None) -> Decimal | None:
    """Mid of the best bid and best ask over the candidate venues, else their latest trade, else None."""
    sources = sorted({spec.source for spec in candidates(config, symbol, venue)})
    quotes = [q for s in sources if (q := market.quote((s, symbol))) is not None]
    bids = [q.bid for q in quotes if q.bid is not None]
    asks = [q.ask for q in quotes if q.ask is not None]
    if bids and asks:
        return (max(bids) + min(asks)) / 2
    trades = [t for s in sources if (t := market.last_trade((s, symbol))) is not None]
    if trades:
        return max(trades, key=lambda t: t[1])[0]
    return None


__all__ = ["Choice", "MarketView", "Quote", "arrival_mid", "candidates", "rank_venues"]
