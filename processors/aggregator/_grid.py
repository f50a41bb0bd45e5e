"""Scans of one side of the dense price grid (an int64 array of sizes by tick index): the book's hot reads."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
NONE = -1          # "no level": an index no grid has


def last_nonzero(side: I64, start: int) -> int:
    """Highest index <= start holding a level, searched in growing chunks (levels cluster at the top)."""
    hi, chunk = start + 1, 256
    while hi > 0:
        lo = max(0, hi - chunk)
        found = np.flatnonzero(side[lo:hi])
        if len(found):
            return lo + int(found[-1])
        hi, chunk = lo, chunk * 4
    return NONE


def first_nonzero(side: I64, start: int) -> int:
    """Lowest index >= start holding a level, searched in growing chunks."""
    lo, chunk, end = start, 256, len(side)
    while lo < end:
        hi = min(end, lo + chunk)
        found = np.flatnonzero(side[lo:hi])
        if len(found):
            return lo + int(found[0])
        lo, chunk = hi, chunk * 4
    return NONE


def best_indices(side: I64, best: int, *, bid: bool, depth: int) -> I64:
    """Window indices of the `depth` best non-empty levels, scanned outwards from the best.

    A simulated fill reads a few levels of a window of up to 2^18 ticks: scanning it all, and
    converting every level, cost most of a venue's time per child order.
    """
    if best == NONE:
        return np.zeros(0, np.int64)
    width = 64
    while True:
        if bid:
            low = max(0, best + 1 - width)
            found = (np.flatnonzero(side[low:best + 1]) + low)[::-1]
            exhausted = low == 0
        else:
            high = min(len(side), best + width)
            found = np.flatnonzero(side[best:high]) + best
            exhausted = high == len(side)
        if len(found) >= depth or exhausted:
            return found[:depth]
        width *= 8
