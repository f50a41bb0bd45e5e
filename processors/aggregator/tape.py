"""Trade summaries: each symbol's trades conflated into at most one TradeSummary per cadence of event time.

The first trade after a quiet spell (none summarised for `every_ns`) is published alone at once, so a
price move is seen without delay; the trades that follow within the cadence are folded together and
published by the first market event (a trade or depth of any symbol) at least `every_ns` after the
previous summary. Under a flood that is one summary per cadence; a trade followed by total silence
waits for the next market event. Pure and deterministic: the same trades in the same order give the
same summaries with the same ids (each is named after the last trade it holds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events.ids import derived_id
from events.market import Trade, TradeSummary

Key = tuple[str, str]


@dataclass(slots=True)
class _Folded:
    """Trades of one symbol not yet summarised."""

    first_ts: int
    last_ts: int
    last_id: str
    last_price: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int

    @classmethod
    def of(cls, trade: Trade) -> _Folded:
        """The fold of one trade."""
        return cls(trade.ts, trade.ts, trade.id, trade.price, trade.price, trade.price, trade.quantity,
                   trade.price * trade.quantity, 1)

    def add(self, trade: Trade) -> None:
        """Fold in the next trade."""
        self.last_ts, self.last_id, self.last_price = trade.ts, trade.id, trade.price
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.volume += trade.quantity
        self.quote_volume += trade.price * trade.quantity
        self.count += 1


@dataclass
class Tape:
    """Per (venue, symbol): when the last summary went out and what has been folded since."""

    every_ns: int
    summarised_at: dict[Key, int] = field(default_factory=dict)
    folded: dict[Key, _Folded] = field(default_factory=dict)
    # The earliest event time at which some folded trades fall due, so most events check one number.
    next_due: int | None = None


def on_trade(tape: Tape, trade: Trade) -> list[TradeSummary]:
    """Fold `trade` in; the summaries now due (its own symbol's, and any other symbol's that waited)."""
    key = (trade.venue, trade.symbol)
    folded = tape.folded.get(key)
    if folded is None:
        tape.folded[key] = _Folded.of(trade)
    else:
        folded.add(trade)
    last = tape.summarised_at.get(key)
    due = trade.ts if last is None else last + tape.every_ns
    tape.next_due = due if tape.next_due is None else min(tape.next_due, due)
    return on_time(tape, trade.ts)


def on_time(tape: Tape, ts: int) -> list[TradeSummary]:
    """The folded trades due by event time `ts` (any market event moves time on), as summaries."""
    if tape.next_due is None or ts < tape.next_due:
        return []
    out: list[TradeSummary] = []
    next_due: int | None = None
    for key in list(tape.folded):
        last = tape.summarised_at.get(key)
        due = tape.folded[key].first_ts if last is None else last + tape.every_ns
        if ts >= due:
            out.append(_summary(key, tape.folded.pop(key)))
            tape.summarised_at[key] = ts
        else:
            next_due = due if next_due is None else min(next_due, due)
    tape.next_due = next_due
    return out


def summarise(trade: Trade) -> TradeSummary:
    """The summary of one trade alone: what the aggregator publishes for a trade after a quiet spell."""
    return _summary((trade.venue, trade.symbol), _Folded.of(trade))


def _summary(key: Key, folded: _Folded) -> TradeSummary:
    venue, symbol = key
    return TradeSummary(id=derived_id(folded.last_id, "summary"), ts=folded.last_ts, causation_id=folded.last_id,
                        venue=venue, symbol=symbol, first_ts=folded.first_ts, price=folded.last_price,
                        high=folded.high, low=folded.low, volume=folded.volume, quote_volume=folded.quote_volume,
                        trade_count=folded.count)


__all__ = ["Tape", "on_time", "on_trade", "summarise"]
