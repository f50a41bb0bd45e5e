"""The L2 book: sequence rules, tops, crosses, and equality with a plain-dict model under any deltas."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.aggregator.book import (
    DeltaBatch,
    L2Book,
    Status,
    apply_batch,
    apply_message,
    apply_snapshot_levels,
    imbalance,
    levels,
    top_of_book,
)

TICK = 10_000  # 0.0001 at 8 decimals


def batch(messages: list[tuple[int, int, int, list[tuple[bool, int, int]]]]) -> DeltaBatch:
    """Columns from (U, u, pu, [(is_bid, price, size)]) tuples."""
    offsets = np.zeros(len(messages) + 1, np.int64)
    np.cumsum([len(m[3]) for m in messages], out=offsets[1:])
    flat = [level for m in messages for level in m[3]]
    return DeltaBatch(np.array([m[0] for m in messages], np.int64), np.array([m[1] for m in messages], np.int64),
                      np.array([m[2] for m in messages], np.int64), offsets,
                      np.array([lv[0] for lv in flat], np.bool_), np.array([lv[1] for lv in flat], np.int64),
                      np.array([lv[2] for lv in flat], np.int64))


def synced_book(lid: int = 100) -> L2Book:
    book = L2Book()
    apply_snapshot_levels(book, lid, np.array([10 * TICK, 9 * TICK]), np.array([5, 6]),
                          np.array([11 * TICK, 12 * TICK]), np.array([7, 8]))
    return book


def test_snapshot_then_top_spread_and_imbalance() -> None:
    top = top_of_book(synced_book())
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (10 * TICK, 5, 11 * TICK, 7)
    assert imbalance(top) == (5 - 7) / 12


def test_spot_delta_when_older_than_snapshot_then_dropped_as_stale() -> None:
    book = synced_book(100)
    result = apply_batch(book, batch([(95, 100, -1, [(True, 10 * TICK, 0)])]))
    assert result.status is Status.STALE and result.stale == 1
    assert top_of_book(book).bid_price == 10 * TICK


def test_spot_first_delta_must_straddle_snapshot_id() -> None:
    book = synced_book(100)
    result = apply_batch(book, batch([(99, 103, -1, [(True, 10 * TICK, 1)]), (104, 104, -1, [])]))
    assert result.status is Status.APPLIED and result.applied == 2 and book.last_update_id == 104
    gap = synced_book(100)
    result = apply_batch(gap, batch([(102, 103, -1, [(True, 10 * TICK, 1)])]))
    assert result.status is Status.GAP and result.needs_resync and not gap.synced


def test_spot_when_u_skips_then_gap_and_book_waits_for_snapshot() -> None:
    book = synced_book(100)
    result = apply_batch(book, batch([(101, 102, -1, []), (104, 105, -1, [(True, 10 * TICK, 0)])]))
    assert result.status is Status.GAP and result.applied == 1 and book.last_update_id == 102
    assert "expected U 103, got U 104" in result.reason
    assert apply_batch(book, batch([(103, 103, -1, [])])).status is Status.NOT_SYNCED
    assert top_of_book(book).bid_price == 10 * TICK  # the message after the gap was not applied


def test_futures_chain_on_pu_not_on_contiguous_ids() -> None:
    book = synced_book(100)
    ok = apply_batch(book, batch([(90, 120, 80, [(False, 11 * TICK, 0)]), (150, 160, 120, [])]))
    assert ok.status is Status.APPLIED and book.last_update_id == 160
    assert top_of_book(book).ask_price == 12 * TICK
    broken = apply_batch(book, batch([(161, 170, 159, [])]))
    assert broken.status is Status.GAP and "expected pu 160, got pu 159" in broken.reason


def test_crossed_book_is_detected_and_asks_for_resync() -> None:
    book = synced_book(100)
    result = apply_batch(book, batch([(101, 101, -1, [(True, 11 * TICK, 3)])]))
    assert result.status is Status.CROSSED and result.needs_resync and not book.synced


def test_best_moves_down_when_top_levels_removed_and_up_on_insert() -> None:
    book = synced_book(100)
    apply_batch(book, batch([(101, 101, -1, [(True, 10 * TICK, 0), (False, 11 * TICK, 0)])]))
    top = top_of_book(book)
    assert (top.bid_price, top.ask_price) == (9 * TICK, 12 * TICK)
    apply_batch(book, batch([(102, 102, -1, [(True, 3 * TICK, 4), (True, 9 * TICK + 5000, 2)])]))
    assert top_of_book(book).bid_price == 9 * TICK + 5000  # off the inferred grid: re-gridded
    assert levels(book, bid=True) == [(95000, 2), (90000, 6), (30000, 4)]


def test_far_level_beyond_max_ticks_lives_beside_the_window_and_still_counts() -> None:
    book = synced_book(100)
    book.max_ticks = 10_000
    apply_batch(book, batch([(101, 101, -1, [(False, 10**6 * TICK, 1), (True, 1 * TICK, 2)])]))
    assert len(book.asks) <= 10_000 and book.far_asks == {10**6: 1}
    assert levels(book, bid=False)[-1] == (10**6 * TICK, 1)
    apply_batch(book, batch([(102, 102, -1, [(False, 11 * TICK, 0), (False, 12 * TICK, 0)])]))
    assert top_of_book(book).ask_price == 10**6 * TICK  # the only ask left is the far one
    apply_batch(book, batch([(103, 103, -1, [(False, 10**6 * TICK, 0)])]))
    assert top_of_book(book).ask_price is None


# (is_bid, tick, size, off-grid offset): offsets make the book re-grid to a finer tick mid-stream.
level = st.tuples(st.booleans(), st.integers(1, 60), st.integers(0, 3), st.sampled_from([0, 0, 0, 2500]))
message = st.lists(level, max_size=8)


@settings(max_examples=150, deadline=None)
@given(snapshot=st.lists(level, max_size=20), messages=st.lists(message, max_size=30),
       cuts=st.lists(st.integers(0, 30), max_size=4), max_ticks=st.sampled_from([1 << 22, 8, 40]),
       live=st.booleans())
def test_book_equals_dict_model_after_any_deltas(snapshot, messages, cuts, max_ticks, live) -> None:
    """Bids on ticks 1..30, asks on 31..60 so nothing crosses; any chunking, window or path gives the same book."""
    def price(is_bid: bool, t: int, offset: int) -> int:
        return (1 + (t - 1) % 30 + (0 if is_bid else 30)) * TICK + offset

    model: dict[bool, dict[int, int]] = {True: {}, False: {}}
    for is_bid, t, size, off in snapshot:
        if size:
            model[is_bid][price(is_bid, t, off)] = size
    book = L2Book(max_ticks=max_ticks)  # small windows force far levels and window moves
    bid_items, ask_items = sorted(model[True].items()), sorted(model[False].items())
    apply_snapshot_levels(book, 10, np.array([p for p, _ in bid_items], np.int64),
                          np.array([s for _, s in bid_items], np.int64),
                          np.array([p for p, _ in ask_items], np.int64), np.array([s for _, s in ask_items], np.int64))
    rows = []
    for k, levels_in in enumerate(messages):
        rows.append((11 + k, 11 + k, -1, [(b, price(b, t, o), s) for b, t, s, o in levels_in]))
        for b, t, s, o in levels_in:
            if s:
                model[b][price(b, t, o)] = s
            else:
                model[b].pop(price(b, t, o), None)
    if live:  # one message at a time through the scalar path (falling back to numpy off-grid)
        for first, last, prev, levels_in in rows:
            assert apply_message(book, first, last, prev, levels_in).status is Status.APPLIED
    bounds = [] if live else sorted({0, len(rows), *[min(c, len(rows)) for c in cuts]})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        assert apply_batch(book, batch(rows[lo:hi])).status is Status.APPLIED
    assert levels(book, bid=True) == sorted(model[True].items(), reverse=True)
    assert levels(book, bid=False) == sorted(model[False].items())
    top = top_of_book(book)
    assert top.bid_price == max(model[True], default=None)
    assert top.ask_price == min(model[False], default=None)
    assert book.last_update_id == 10 + len(rows)
