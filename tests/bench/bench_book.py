"""Benchmark: L2 book level updates applied per second, beside a plain-dict book timed in the same run."""

from __future__ import annotations

import time

import numpy as np

from processors.aggregator.book import (
    DeltaBatch,
    L2Book,
    apply_batch,
    apply_message,
    apply_snapshot_levels,
    top_of_book,
)
from tests.bench.harness import BenchResult, result

TICK = 100          # 0.01 at 4 decimals
MID = 4_000_000     # tick number of the mid price
LEVELS_PER_MESSAGE = 10


def synthetic(messages: int, seed: int = 7) -> tuple[DeltaBatch, tuple[np.ndarray, ...]]:
    """Chained spot deltas around a fixed mid (so never crossed): 80% size changes, 20% removals, 10 levels each."""
    rng = np.random.default_rng(seed)
    n = messages * LEVELS_PER_MESSAGE
    distance = rng.geometric(0.08, n)                      # most updates near the top, as on real feeds
    is_bid = rng.random(n) < 0.5
    ticks = MID + np.where(is_bid, -distance, distance)
    sizes = np.where(rng.random(n) < 0.2, 0, rng.integers(1, 10_000, n))
    first = np.arange(1, messages + 1, dtype=np.int64) + 1000
    offsets = np.arange(0, n + 1, LEVELS_PER_MESSAGE, dtype=np.int64)
    batch = DeltaBatch(first, first.copy(), np.full(messages, -1, np.int64), offsets, is_bid,
                       (ticks * TICK).astype(np.int64), sizes.astype(np.int64))
    snap_b = (MID - np.arange(1, 500)) * TICK
    snap_a = (MID + np.arange(1, 500)) * TICK
    return batch, (snap_b, np.full(499, 5), snap_a, np.full(499, 5))


def run_array_book(batch: DeltaBatch, snapshot: tuple[np.ndarray, ...]) -> tuple[float, tuple]:
    """Seconds to apply the whole batch with the vectorised book, and the resulting top."""
    book = L2Book(price_scale=4, size_scale=0)
    apply_snapshot_levels(book, 1000, *snapshot)
    start = time.perf_counter()
    outcome = apply_batch(book, batch)
    elapsed = time.perf_counter() - start
    if outcome.applied != len(batch):
        raise AssertionError(f"bench book stopped early: {outcome}")
    top = top_of_book(book)
    return elapsed, (top.bid_price, top.ask_price)


def run_live_book(batch: DeltaBatch, snapshot: tuple[np.ndarray, ...]) -> tuple[float, tuple]:
    """Seconds to apply the same deltas one message at a time (the live path, cross-checked per message)."""
    book = L2Book(price_scale=4, size_scale=0)
    apply_snapshot_levels(book, 1000, *snapshot)
    is_bid, prices, sizes, offsets = (batch.is_bid.tolist(), batch.prices.tolist(), batch.sizes.tolist(),
                                      batch.offsets.tolist())
    messages = [(int(batch.first_ids[m]), int(batch.last_ids[m]), -1,
                 list(zip(is_bid[offsets[m]:offsets[m + 1]], prices[offsets[m]:offsets[m + 1]],
                          sizes[offsets[m]:offsets[m + 1]], strict=True))) for m in range(len(batch))]
    start = time.perf_counter()
    for message in messages:
        apply_message(book, *message)
    elapsed = time.perf_counter() - start
    top = top_of_book(book)
    return elapsed, (top.bid_price, top.ask_price)


def run_dict_book(batch: DeltaBatch, snapshot: tuple[np.ndarray, ...]) -> tuple[float, tuple]:
    """Seconds for the plain-dict baseline: the same sequence checks and level writes, best prices at the end."""
    bids = dict(zip(snapshot[0].tolist(), snapshot[1].tolist(), strict=True))
    asks = dict(zip(snapshot[2].tolist(), snapshot[3].tolist(), strict=True))
    first, last = batch.first_ids.tolist(), batch.last_ids.tolist()
    offsets = batch.offsets.tolist()
    is_bid, prices, sizes = batch.is_bid.tolist(), batch.prices.tolist(), batch.sizes.tolist()
    start = time.perf_counter()
    lid = 1000
    for m in range(len(first)):
        if last[m] <= lid:
            continue
        if first[m] != lid + 1:
            raise AssertionError("gap in synthetic data")
        for k in range(offsets[m], offsets[m + 1]):
            side = bids if is_bid[k] else asks
            if sizes[k]:
                side[prices[k]] = sizes[k]
            else:
                side.pop(prices[k], None)
        lid = last[m]
    top = (max(bids), min(asks))
    return time.perf_counter() - start, top


def run(messages: int = 200_000, repeats: int = 3) -> list[BenchResult]:
    """Level updates per second: vectorised batch book vs a plain-dict book, best of `repeats`."""
    batch, snapshot = synthetic(messages)
    updates = len(batch.prices)
    ours_runs = [run_array_book(batch, snapshot) for _ in range(repeats)]
    dict_runs = [run_dict_book(batch, snapshot) for _ in range(repeats)]
    if ours_runs[0][1] != dict_runs[0][1]:
        raise AssertionError(f"books disagree: {ours_runs[0][1]} vs {dict_runs[0][1]}")
    live_runs = [run_live_book(batch, snapshot) for _ in range(repeats)]
    if live_runs[0][1] != dict_runs[0][1]:
        raise AssertionError(f"live book disagrees: {live_runs[0][1]} vs {dict_runs[0][1]}")
    ours = max(updates / seconds for seconds, _ in ours_runs)
    live = max(updates / seconds for seconds, _ in live_runs)
    baseline = max(updates / seconds for seconds, _ in dict_runs)
    return [result("book_deltas", ours, "level updates/s", baseline="plain dict book, same updates",
                   baseline_value=baseline, better="higher"),
            # The live path applies one 10-level message at a time with a cross check after each.
            result("book_deltas_live", live, "level updates/s", baseline="plain dict book, same updates",
                   baseline_value=baseline, better="higher")]


if __name__ == "__main__":
    for row in run():
        print(row.as_dict())
