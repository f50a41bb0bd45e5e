"""The simulated venue's view of a market's L2 book: the aggregator's book and Binance sync rules, in Decimals.

Reuses processors.aggregator (the dense-grid L2Book and BookSync: buffering diffs until a
snapshot, replaying them, resync on a gap). A book that is waiting for a snapshot is unusable
and the venue falls back to the last trade price.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from events.market import BookDelta, BookSnapshot
from processors.aggregator.book import L2Book, levels
from processors.aggregator.sync import BookSync, on_delta, on_snapshot

_SHALLOW = 16
_ONE = Decimal(1)


def from_scaled(value: int, scale: int) -> Decimal:
    """The Decimal a scaled int of the aggregator's book stands for, without the scale's trailing zeros."""
    number = Decimal(value).scaleb(-scale)
    return number.quantize(_ONE) if number == number.to_integral_value() else number.normalize()


@dataclass
class MarketBook:
    """One (market venue, symbol) book as the simulated venues see it."""

    price_scale: int = 8
    size_scale: int = 8
    sync: BookSync = field(init=False)

    def __post_init__(self) -> None:
        self.sync = BookSync(book=L2Book(price_scale=self.price_scale, size_scale=self.size_scale))

    @property
    def usable(self) -> bool:
        """True when a snapshot was applied and no gap or cross has happened since."""
        return self.sync.book.synced

    def apply(self, event: BookSnapshot | BookDelta) -> None:
        """Take in a snapshot or a diff (diffs before the first snapshot are buffered, per Binance)."""
        if isinstance(event, BookSnapshot):
            on_snapshot(self.sync, event)
        else:
            on_delta(self.sync, event)

    def side(self, *, bid: bool, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """(price, size) levels of one side, best first (the best `depth`, or all); empty when unusable."""
        if not self.usable:
            return []
        book = self.sync.book
        return [(from_scaled(p, book.price_scale), from_scaled(s, book.size_scale))
                for p, s in levels(book, bid=bid, depth=depth)]

    def walk(self, *, bid: bool) -> Iterator[tuple[Decimal, Decimal]]:
        """Levels of one side best first, converting only as many as the caller takes (in growing steps)."""
        given, depth = 0, _SHALLOW
        while True:
            rows = self.side(bid=bid, depth=depth)
            yield from rows[given:]
            if len(rows) < depth:
                return
            given, depth = len(rows), depth * 16


__all__ = ["MarketBook"]
