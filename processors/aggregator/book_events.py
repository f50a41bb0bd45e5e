"""BookSnapshot and BookDelta events to and from the book's scaled-int columns (exact, or refused)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import numpy.typing as npt

from events.market import BookDelta, BookSnapshot
from processors.aggregator.book import (
    I64,
    ApplyResult,
    DeltaBatch,
    L2Book,
    apply_message,
    apply_snapshot_levels,
)


def to_scaled(value: Decimal | str, scale: int, field: str = "value") -> int:
    """An exact decimal as an int scaled by 10**scale; refuses values with more decimals than `scale`."""
    number = value if isinstance(value, Decimal) else Decimal(value)
    scaled = number.scaleb(scale)
    integral = int(scaled)
    if scaled != integral:
        raise ValueError(f"{field} {value} has more than {scale} decimals (the book's scale)")
    return integral


def from_scaled(value: int, scale: int) -> Decimal:
    """The Decimal a scaled int stands for."""
    return Decimal(value).scaleb(-scale)


def _level_columns(book: L2Book, bids: list[tuple[Decimal, Decimal]],
                   asks: list[tuple[Decimal, Decimal]]) -> tuple[npt.NDArray[np.bool_], I64, I64]:
    rows = [(True, p, s) for p, s in bids] + [(False, p, s) for p, s in asks]
    is_bid = np.fromiter((r[0] for r in rows), np.bool_, len(rows))
    prices = np.fromiter((to_scaled(r[1], book.price_scale, "price") for r in rows), np.int64, len(rows))
    sizes = np.fromiter((to_scaled(r[2], book.size_scale, "size") for r in rows), np.int64, len(rows))
    return is_bid, prices, sizes


def apply_snapshot(book: L2Book, snapshot: BookSnapshot) -> None:
    """Replace the book with a BookSnapshot event."""
    is_bid, prices, sizes = _level_columns(book, snapshot.bids, snapshot.asks)
    apply_snapshot_levels(book, snapshot.last_update_id, prices[is_bid], sizes[is_bid],
                          prices[~is_bid], sizes[~is_bid])


def delta_batch(book: L2Book, deltas: list[BookDelta]) -> DeltaBatch:
    """Columns for BookDelta events, scaled to the book's decimals."""
    parts = [_level_columns(book, d.bids, d.asks) for d in deltas]
    counts = np.array([len(p[1]) for p in parts], np.int64)
    offsets = np.zeros(len(deltas) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    empty_b, empty_i = np.zeros(0, np.bool_), np.zeros(0, np.int64)
    return DeltaBatch(
        np.array([d.first_update_id for d in deltas], np.int64),
        np.array([d.last_update_id for d in deltas], np.int64),
        np.array([-1 if d.prev_last_update_id is None else d.prev_last_update_id for d in deltas], np.int64),
        offsets,
        np.concatenate([p[0] for p in parts]) if parts else empty_b,
        np.concatenate([p[1] for p in parts]) if parts else empty_i,
        np.concatenate([p[2] for p in parts]) if parts else empty_i,
    )


def apply_delta(book: L2Book, delta: BookDelta) -> ApplyResult:
    """Apply one BookDelta event (cross checked after it)."""
    levels = [(True, to_scaled(p, book.price_scale, "price"), to_scaled(q, book.size_scale, "size"))
              for p, q in delta.bids]
    levels += [(False, to_scaled(p, book.price_scale, "price"), to_scaled(q, book.size_scale, "size"))
               for p, q in delta.asks]
    prev = -1 if delta.prev_last_update_id is None else delta.prev_last_update_id
    return apply_message(book, delta.first_update_id, delta.last_update_id, prev, levels)


__all__ = ["apply_delta", "apply_snapshot", "delta_batch", "from_scaled", "to_scaled"]
