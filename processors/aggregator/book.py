"""Pure L2 order book on a dense tick grid: snapshots and deltas with Binance's sequence rules, tops, imbalance.

Prices and sizes are scaled int64 (`price_scale` / `size_scale` decimals). Each side is a numpy
array indexed by tick number minus a moving base, so applying a batch of level updates is one
vectorised scatter; best prices are kept lazily (raised on an insert above the best, searched
for in small chunks only when the best level empties). The window spans at most `max_ticks`;
stray levels beyond it (a 1000-level snapshot may hold an ask at 100x the price) are kept in
small dicts beside it, and the window moves when most updates miss it.

The book is a value owned by its caller: the functions here mutate it in place and return an
`ApplyResult`, with no I/O and no clock (copying megabyte arrays per delta would defeat the
point). Sequence rules (Binance "how to manage a local order book correctly"):

* after a snapshot, deltas with `u <= lastUpdateId` are stale and dropped;
* spot: the first applied delta has `U <= lastUpdateId + 1`, each next one `U == previous u + 1`;
* USD-M futures (delta carries `pu`): the first applied delta has `U <= lastUpdateId` (or
  `pu == lastUpdateId`), each next one `pu == previous u`;
* anything else is a gap: the book stops (`synced` false) until the next snapshot, and the
  result asks for a resync. A crossed book (best bid >= best ask) also asks for a resync.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from processors.aggregator._grid import I64, best_indices, first_nonzero, last_nonzero
from processors.aggregator._grid import NONE as _NONE

_MIN_CAPACITY = 1024


class Status(enum.Enum):
    """What applying input did to the book."""

    APPLIED = "applied"
    STALE = "stale"            # every message was older than the book: dropped, nothing changed
    GAP = "gap"                # sequence broken: book unsynced, fetch a snapshot
    NOT_SYNCED = "not_synced"  # no snapshot since start or since the last gap/cross: buffer and resync
    CROSSED = "crossed"        # applied, but best bid >= best ask: book unsynced, fetch a snapshot


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of applying deltas: status, how many messages were applied or dropped, and why it stopped."""

    status: Status
    applied: int = 0
    stale: int = 0
    last_update_id: int | None = None
    reason: str = ""

    @property
    def needs_resync(self) -> bool:
        """True when the caller must fetch a fresh snapshot before the book can be used again."""
        return self.status in (Status.GAP, Status.NOT_SYNCED, Status.CROSSED)


class InvalidLevel(ValueError):
    """A level's scaled price or size is below what a book allows; field, value and limit are attributes."""

    def __init__(self, field: str, value: int, limit: int) -> None:
        super().__init__(f"{field} {value} is below the minimum {limit}")
        self.field = field
        self.value = value
        self.limit = limit


@dataclass
class DeltaBatch:
    """Deltas in columns: per message U, u and pu (-1 when absent); levels flat, sliced by `offsets`."""

    first_ids: I64
    last_ids: I64
    prev_ids: I64
    offsets: I64                 # len(messages) + 1; levels of message i are offsets[i]:offsets[i+1]
    is_bid: npt.NDArray[np.bool_]
    prices: I64                  # scaled by 10**price_scale
    sizes: I64                   # scaled by 10**size_scale; 0 removes the level

    def __len__(self) -> int:
        """Number of messages."""
        return len(self.first_ids)


@dataclass
class L2Book:
    """Both sides of one symbol's book on a shared tick grid, with its sequence position."""

    price_scale: int = 8
    size_scale: int = 8
    max_ticks: int = 1 << 18     # window size: 3 int64 arrays of this length (6 MB)
    tick: int = 0                # price units per tick; 0 until the first level is seen
    base: int = 0                # tick number stored at index 0
    bids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    asks: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    best_bid: int = _NONE        # index into bids, or -1 when the side is empty
    best_ask: int = _NONE
    last_update_id: int | None = None
    synced: bool = False         # a snapshot was applied and no gap or cross since
    chained: bool = False        # the first delta after the snapshot has been applied
    far_bids: dict[int, int] = field(default_factory=dict)   # tick number -> size, outside the window
    far_asks: dict[int, int] = field(default_factory=dict)
    _scratch: I64 = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)


@dataclass(frozen=True)
class Top:
    """Best bid and ask (scaled ints, None when a side is empty) at an update id."""

    last_update_id: int | None
    bid_price: int | None
    bid_size: int | None
    ask_price: int | None
    ask_size: int | None


# ---------------------------------------------------------------- grid


def _far_best(book: L2Book, bid: bool) -> int | None:
    far = book.far_bids if bid else book.far_asks
    if not far:
        return None
    return max(far) if bid else min(far)


def _regrid(book: L2Book, tick: int, new_ticks: I64, *, follow_updates: bool = False) -> None:
    """Rebuild the window on `tick` around every level (or, if they span too far, around the mid)."""
    ratio = book.tick // tick if book.tick else 1
    sides = []
    for side, far in ((book.bids, book.far_bids), (book.asks, book.far_asks)):
        nz = np.flatnonzero(side)
        ticks = np.concatenate([(nz + book.base) * ratio, np.array(list(far), np.int64) * ratio])
        sizes = np.concatenate([side[nz], np.array(list(far.values()), np.int64)])
        sides.append((ticks, sizes))
    every = np.concatenate([sides[0][0], sides[1][0], new_ticks])
    lo, hi = int(every.min()), int(every.max())
    span = hi - lo + 1
    if span <= book.max_ticks:
        capacity = min(book.max_ticks, max(_MIN_CAPACITY, 2 * span))
        base = lo - (capacity - span) // 2
    else:
        # Outliers (a stray far-away level) must not cost gigabytes: they live in dicts beside the window.
        capacity = book.max_ticks
        # Centre on the book's levels, or on the updates when the market has moved away from them.
        base = int(np.median(new_ticks if follow_updates else every)) - capacity // 2
    book.tick, book.base = tick, base
    book.far_bids, book.far_asks = {}, {}
    arrays = []
    for (ticks, sizes), far in zip(sides, (book.far_bids, book.far_asks), strict=True):
        array = np.zeros(capacity, np.int64)
        inside = (ticks >= base) & (ticks < base + capacity)
        array[ticks[inside] - base] = sizes[inside]
        far.update(zip(ticks[~inside].tolist(), sizes[~inside].tolist(), strict=True))
        arrays.append(array)
    book.bids, book.asks = arrays
    book.best_bid = last_nonzero(book.bids, capacity - 1)
    book.best_ask = first_nonzero(book.asks, 0)
    book._scratch = np.full(capacity, -1, np.int64)


def _indices(book: L2Book, prices: I64) -> tuple[I64, npt.NDArray[np.bool_] | None]:
    """Window indices for scaled prices (re-gridding when needed) and a mask of those inside (None: all)."""
    if int(prices.min()) <= 0:
        raise InvalidLevel("price", int(prices.min()), 1)
    tick = book.tick
    if tick == 0 or bool((prices % tick).any()):
        tick = math.gcd(tick, int(np.gcd.reduce(prices)))
    ticks = prices // tick
    lo, hi = int(ticks.min()), int(ticks.max())
    capacity = len(book.bids)
    if tick != book.tick or lo < book.base or hi >= book.base + capacity:
        outside = (ticks < book.base) | (ticks >= book.base + capacity)
        # A full-size window is moved only when most updates miss it (the market moved away), not
        # for every update of a stray far level.
        moved = capacity >= book.max_ticks and 2 * int(outside.sum()) > len(ticks)
        if tick != book.tick or capacity < book.max_ticks or moved:
            _regrid(book, tick, ticks, follow_updates=moved)
    idx = ticks - book.base
    capacity = len(book.bids)
    if lo >= book.base and hi < book.base + capacity:
        return idx, None
    return idx, (idx >= 0) & (idx < capacity)


def _scatter(book: L2Book, side: I64, idx: I64, sizes: I64) -> None:
    """side[idx] = sizes where the last write to an index wins (numpy leaves duplicate order unspecified)."""
    if len(idx) > 1:
        scratch = book._scratch
        positions = np.arange(len(idx), dtype=np.int64)
        np.maximum.at(scratch, idx, positions)
        winners = scratch[idx] == positions
        scratch[idx] = -1
        idx, sizes = idx[winners], sizes[winners]
    side[idx] = sizes


def _apply_levels(book: L2Book, is_bid: npt.NDArray[np.bool_], prices: I64, sizes: I64) -> None:
    """Write level updates (already in sequence order) and move the best prices."""
    if not len(prices):
        return
    if int(sizes.min()) < 0:
        raise InvalidLevel("size", int(sizes.min()), 0)
    idx, inside = _indices(book, prices)
    if inside is not None:
        # Far levels are rare: plain dict writes, in order.
        for k in np.flatnonzero(~inside).tolist():
            far = book.far_bids if is_bid[k] else book.far_asks
            tick_number = int(idx[k]) + book.base
            if sizes[k]:
                far[tick_number] = int(sizes[k])
            else:
                far.pop(tick_number, None)
        is_bid, idx, sizes = is_bid[inside], idx[inside], sizes[inside]
    for bid in (True, False):
        mask = is_bid if bid else ~is_bid
        side_idx, side_sizes = idx[mask], sizes[mask]
        if not len(side_idx):
            continue
        side = book.bids if bid else book.asks
        _scatter(book, side, side_idx, side_sizes)
        added = side_idx[side_sizes > 0]
        if bid:
            best = max(book.best_bid, int(added.max()) if len(added) else _NONE)
            if best != _NONE and side[best] == 0:
                best = last_nonzero(side, best)
            book.best_bid = best
        else:
            best = book.best_ask
            if len(added):
                low = int(added.min())
                best = low if best == _NONE else min(best, low)
            if best != _NONE and side[best] == 0:
                best = first_nonzero(side, best)
            book.best_ask = best


# ---------------------------------------------------------------- public API


def apply_snapshot_levels(book: L2Book, last_update_id: int, bid_prices: I64, bid_sizes: I64,
                          ask_prices: I64, ask_sizes: I64) -> None:
    """Replace the book with a snapshot at `last_update_id` (scaled ints); the book is synced again."""
    book.bids = np.zeros(0, np.int64)
    book.asks = np.zeros(0, np.int64)
    book.far_bids, book.far_asks = {}, {}
    book.tick, book.base, book.best_bid, book.best_ask = 0, 0, _NONE, _NONE
    prices = np.concatenate([bid_prices, ask_prices]).astype(np.int64)
    sizes = np.concatenate([bid_sizes, ask_sizes]).astype(np.int64)
    is_bid = np.zeros(len(prices), np.bool_)
    is_bid[: len(bid_prices)] = True
    _apply_levels(book, is_bid, prices, sizes)
    book.last_update_id, book.synced, book.chained = last_update_id, True, False


def _chain_ok(batch: DeltaBatch) -> npt.NDArray[np.bool_]:
    """ok[j] (j >= 1): message j follows message j-1 without a gap (pu rule when pu is present)."""
    first, last, prev = batch.first_ids, batch.last_ids, batch.prev_ids
    ok = np.ones(len(first), np.bool_)
    if len(first) > 1:
        ok[1:] = np.where(prev[1:] >= 0, prev[1:] == last[:-1], first[1:] == last[:-1] + 1)
    return ok


def _follows(book: L2Book, first: int, prev: int) -> bool:
    """Does a message with U=first and pu=prev continue the book at its last_update_id?"""
    lid = book.last_update_id
    assert lid is not None
    if book.chained:
        return prev == lid if prev >= 0 else first == lid + 1
    return (prev == lid or first <= lid) if prev >= 0 else first <= lid + 1


def _refuse(book: L2Book, first: int, last: int, prev: int, applied: int, stale: int) -> ApplyResult | None:
    """The result that stops message (U, u, pu) from applying — unsynced, stale or a gap — or None if it follows."""
    if not book.synced:
        return ApplyResult(Status.NOT_SYNCED, applied, stale, book.last_update_id,
                           "no snapshot since start or since the last gap")
    lid = book.last_update_id
    assert lid is not None
    if last <= lid:
        return ApplyResult(Status.STALE, applied, stale + 1, lid)
    if _follows(book, first, prev):
        return None
    book.synced = False
    wanted = f"pu {lid}" if prev >= 0 and book.chained else f"U <= {lid + 1}" if not book.chained else f"U {lid + 1}"
    got = f"pu {prev}" if prev >= 0 and book.chained else f"U {first}"
    return ApplyResult(Status.GAP, applied, stale, lid, f"update {last}: expected {wanted}, got {got}")


def _crossed(book: L2Book, applied: int, stale: int) -> ApplyResult | None:
    if not is_crossed(book):
        return None
    book.synced = False
    top = top_of_book(book)
    return ApplyResult(Status.CROSSED, applied, stale, book.last_update_id,
                       f"best bid {top.bid_price} >= best ask {top.ask_price}")


def apply_batch(book: L2Book, batch: DeltaBatch) -> ApplyResult:
    """Apply messages in order: drop stale ones, apply chained runs vectorised, stop at a gap or a cross.

    A cross is checked after each chained run, so one that appears and clears inside a run
    is not reported; apply one message at a time (apply_message) to check every message.
    """
    n = len(batch)
    chain_ok = _chain_ok(batch)
    breaks = np.flatnonzero(~chain_ok[1:]) + 1 if n > 1 else np.zeros(0, np.int64)
    first, last, prev, offsets = batch.first_ids, batch.last_ids, batch.prev_ids, batch.offsets
    applied = stale = 0
    i = 0
    while i < n:
        refused = _refuse(book, int(first[i]), int(last[i]), int(prev[i]), applied, stale)
        if refused is not None and refused.status is Status.STALE:
            stale, i = refused.stale, i + 1
            continue
        if refused is not None:
            return refused
        later = breaks[np.searchsorted(breaks, i, side="right"):] if len(breaks) else breaks
        end = int(later[0]) if len(later) else n
        lo, hi = int(offsets[i]), int(offsets[end])
        _apply_levels(book, batch.is_bid[lo:hi], batch.prices[lo:hi], batch.sizes[lo:hi])
        book.last_update_id, book.chained = int(last[end - 1]), True
        applied += end - i
        i = end
        crossed = _crossed(book, applied, stale)
        if crossed is not None:
            return crossed
    status = Status.APPLIED if applied or not n else Status.STALE
    return ApplyResult(status, applied, stale, book.last_update_id)


def _apply_small(book: L2Book, levels_in: list[tuple[bool, int, int]]) -> bool:
    """Scalar writes for a live message whose levels all sit on the grid inside the window; False if not."""
    tick, base, capacity = book.tick, book.base, len(book.bids)
    if not tick:
        return False
    for _, price, size in levels_in:
        if price <= 0 or size < 0 or price % tick or not 0 <= price // tick - base < capacity:
            return False
    bids, asks = book.bids, book.asks
    best_bid, best_ask = book.best_bid, book.best_ask
    for is_bid, price, size in levels_in:
        index = price // tick - base
        if is_bid:
            bids[index] = size
            if size and index > best_bid:
                best_bid = index
        else:
            asks[index] = size
            if size and (best_ask == _NONE or index < best_ask):
                best_ask = index
    if best_bid != _NONE and bids[best_bid] == 0:
        best_bid = last_nonzero(bids, best_bid)
    if best_ask != _NONE and asks[best_ask] == 0:
        best_ask = first_nonzero(asks, best_ask)
    book.best_bid, book.best_ask = best_bid, best_ask
    return True


def apply_message(book: L2Book, first: int, last: int, prev: int,
                  levels_in: list[tuple[bool, int, int]]) -> ApplyResult:
    """Apply one live message (U, u, pu or -1, [(is_bid, price, size)]) with a cross check after it.

    Small on-grid messages take a scalar path (numpy call overhead would dominate a 100 ms diff);
    anything else goes through the vectorised writer.
    """
    refused = _refuse(book, first, last, prev, 0, 0)
    if refused is not None:
        return refused
    if not _apply_small(book, levels_in) and levels_in:
        _apply_levels(book, np.array([lv[0] for lv in levels_in], np.bool_),
                      np.array([lv[1] for lv in levels_in], np.int64), np.array([lv[2] for lv in levels_in], np.int64))
    book.last_update_id, book.chained = last, True
    return _crossed(book, 1, 0) or ApplyResult(Status.APPLIED, 1, 0, last)


def _best(book: L2Book, bid: bool) -> tuple[int, int] | None:
    """(tick number, size) of the best level of a side, window or far."""
    index = book.best_bid if bid else book.best_ask
    inner = None if index == _NONE else (index + book.base, int((book.bids if bid else book.asks)[index]))
    far_tick = _far_best(book, bid)
    if far_tick is None:
        return inner
    far = (far_tick, (book.far_bids if bid else book.far_asks)[far_tick])
    if inner is None:
        return far
    return max(inner, far) if bid else min(inner, far)


def is_crossed(book: L2Book) -> bool:
    """True when both sides exist and the best bid is at or above the best ask."""
    if book.best_bid != _NONE and book.best_ask != _NONE and not book.far_bids and not book.far_asks:
        return book.best_bid >= book.best_ask
    bid, ask = _best(book, True), _best(book, False)
    return bid is not None and ask is not None and bid[0] >= ask[0]


def top_of_book(book: L2Book) -> Top:
    """Best bid and ask with sizes, as scaled ints."""
    bid, ask = _best(book, True), _best(book, False)
    return Top(
        book.last_update_id,
        None if bid is None else bid[0] * book.tick,
        None if bid is None else bid[1],
        None if ask is None else ask[0] * book.tick,
        None if ask is None else ask[1],
    )


def imbalance(top: Top) -> float | None:
    """Top-of-book size imbalance in [-1, 1]: (bid size - ask size) / (bid size + ask size)."""
    if top.bid_size is None or top.ask_size is None or top.bid_size + top.ask_size == 0:
        return None
    return (top.bid_size - top.ask_size) / (top.bid_size + top.ask_size)


def levels(book: L2Book, *, bid: bool, depth: int | None = None) -> list[tuple[int, int]]:
    """(price, size) scaled ints best first; all levels unless `depth` is given."""
    side = book.bids if bid else book.asks
    idx = np.flatnonzero(side) if depth is None else best_indices(side, book.best_bid if bid else book.best_ask,
                                                                   bid=bid, depth=depth)
    rows = [(int(i + book.base), int(side[i])) for i in idx]
    rows += list((book.far_bids if bid else book.far_asks).items())
    rows.sort(reverse=bid)
    return [(t * book.tick, size) for t, size in rows[:depth]]


__all__ = [
    "ApplyResult", "DeltaBatch", "InvalidLevel", "L2Book", "Status", "Top", "apply_batch", "apply_message",
    "apply_snapshot_levels",
    "imbalance", "is_crossed", "levels", "top_of_book",
]
