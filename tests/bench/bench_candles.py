"""Benchmark: trades turned into 1m candles per second by the numpy batch path, beside a plain-Python loop."""

from __future__ import annotations

import time

import numpy as np

from processors.aggregator.candles import candles_batch
from tests.bench.harness import BenchResult, result

MINUTE = 60_000_000_000


def synthetic(n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n trades over about n/50 seconds: time-ordered, random-walk prices, random sizes (scaled ints)."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 40_000_000, n)).astype(np.int64)
    prices = (4_000_000_000_000 + np.cumsum(rng.integers(-100, 101, n))).astype(np.int64)
    sizes = rng.integers(1, 1_000_000, n).astype(np.int64)
    return ts, prices, sizes


def python_candles(ts: list[int], prices: list[int], sizes: list[int], interval: int) -> dict[int, list[int]]:
    """The baseline: one dict entry per interval, OHLCV updated trade by trade."""
    bars: dict[int, list[int]] = {}
    for t, p, q in zip(ts, prices, sizes, strict=True):
        key = t - t % interval
        bar = bars.get(key)
        if bar is None:
            bars[key] = [p, p, p, p, q, 1]
        else:
            if p > bar[1]:
                bar[1] = p
            if p < bar[2]:
                bar[2] = p
            bar[3] = p
            bar[4] += q
            bar[5] += 1
    return bars


def run(n: int = 4_000_000, baseline_n: int = 1_000_000, repeats: int = 3) -> list[BenchResult]:
    """Trades per second into 1m bars: the batch path on n trades vs the Python loop on baseline_n."""
    ts, prices, sizes = synthetic(n)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        bars = candles_batch(ts, prices, sizes, MINUTE)
        best = max(best, n / (time.perf_counter() - start))
    lists = ts[:baseline_n].tolist(), prices[:baseline_n].tolist(), sizes[:baseline_n].tolist()
    start = time.perf_counter()
    reference = python_candles(*lists, MINUTE)
    baseline = baseline_n / (time.perf_counter() - start)
    first = next(iter(reference.values()))
    if [int(bars.open[0]), int(bars.high[0]), int(bars.low[0]), int(bars.close[0]), int(bars.volume[0])] != first[:5]:
        raise AssertionError("batch and baseline candles disagree on the first bar")
    return [result("candles_trades", best, "trades/s", baseline="plain Python dict loop, same trades",
                   baseline_value=baseline, better="higher")]


if __name__ == "__main__":
    for row in run():
        print(row.as_dict())
