"""Slice schedules: exact slice quantities, TWAP times (optionally jittered), and the VWAP volume curve.

Quantities are split in whole lots with exact rational arithmetic: slice i gets
`floor(lots * W_i) - floor(lots * W_{i-1})` lots, where W_i is the cumulative weight share up
to slice i, and the last slice gets whatever is left — so slices always sum to the parent
quantity exactly, and any part of it that is not a whole lot lands on the last slice.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from events.market import Bar

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S


def quantum(quantity: Decimal, lot: Decimal | None) -> Decimal:
    """The step to slice `quantity` in: the lot size, else one unit of the quantity's last decimal."""
    if lot is not None:
        return lot
    exponent = quantity.as_tuple().exponent
    return Decimal(1).scaleb(min(0, int(exponent)))  # type: ignore[arg-type]


def floor_lots(quantity: Decimal, lot: Decimal) -> Decimal:
    """`quantity` rounded down to a whole number of lots."""
    return (quantity // lot) * lot


def split(quantity: Decimal, weights: Sequence[Fraction | int | Decimal], lot: Decimal) -> list[Decimal]:
    """Slice quantities proportional to `weights`, in whole lots, summing exactly to `quantity`."""
    if not weights:
        raise ValueError("weights must not be empty")
    fractions = [Fraction(w) for w in weights]
    if any(w < 0 for w in fractions):
        raise ValueError(f"weights must not be negative: {list(weights)}")
    total = sum(fractions, Fraction(0))
    if total == 0:
        fractions, total = [Fraction(1)] * len(fractions), Fraction(len(fractions))
    lots = int(quantity // lot)
    out: list[Decimal] = []
    cumulative, previous_lots = Fraction(0), 0
    for weight in fractions[:-1]:
        cumulative += weight
        target = math.floor(lots * cumulative / total)
        out.append((target - previous_lots) * lot)
        previous_lots = target
    out.append(quantity - sum(out, Decimal(0)))
    return out


def seed_for(order_id: str) -> int:
    """The PRNG seed of a parent order: the only randomness in the router, reproducible by construction."""
    return int.from_bytes(hashlib.sha256(order_id.encode()).digest()[:8], "big")


def duration_ns(seconds: float) -> int:
    """A duration in seconds (a JSON number) as integer nanoseconds, via its shortest decimal form."""
    return int(Decimal(repr(seconds)) * NS_PER_S)


def slice_times(order_id: str, start: int, duration: int, slices: int, randomize: float = 0.0) -> list[int]:
    """When each slice is due: start + i*duration/slices, each moved by up to ±randomize of the interval.

    Jitter is drawn from a PRNG seeded by the order id; randomize <= 0.5 keeps slices in order,
    and the first slice never moves before the start.
    """
    times = [start + (i * duration) // slices for i in range(slices)]
    if randomize > 0:
        rng = random.Random(seed_for(order_id))
        interval = duration / slices
        times = [max(start, t + round((rng.random() * 2 - 1) * randomize * interval)) for t in times]
        times.sort()
    return times


@dataclass
class _SymbolCurve:
    volumes: dict[int, Decimal] = field(default_factory=dict)          # bucket of day -> volume
    bars: dict[tuple[str, int], Decimal] = field(default_factory=dict)  # (venue, open_time) -> volume
    order: deque[tuple[int, str]] = field(default_factory=deque)        # (open_time, venue), arrival order
    newest: int = 0


@dataclass
class VolumeCurve:
    """Historical volume per bucket of the day (e.g. per minute), per symbol, summed over venues.

    Built from Bar events of one interval over a lookback window; a bar seen again (a redelivery
    or an updated bar) replaces its earlier volume rather than adding to it.
    """

    bucket_ns: int
    lookback_ns: int
    symbols: dict[str, _SymbolCurve] = field(default_factory=dict)

    def bucket(self, ts: int) -> int:
        """The bucket of the day `ts` falls in."""
        return (ts % DAY_NS) // self.bucket_ns

    def add(self, bar: Bar) -> None:
        """Count a bar's volume in its bucket, and drop bars older than the lookback."""
        curve = self.symbols.setdefault(bar.symbol, _SymbolCurve())
        if bar.open_time <= curve.newest - self.lookback_ns:
            return
        key = (bar.venue, bar.open_time)
        bucket = self.bucket(bar.open_time)
        previous = curve.bars.get(key)
        if previous is None:
            curve.order.append((bar.open_time, bar.venue))
        curve.bars[key] = bar.volume
        curve.volumes[bucket] = curve.volumes.get(bucket, Decimal(0)) + bar.volume - (previous or 0)
        curve.newest = max(curve.newest, bar.open_time)
        while curve.order and curve.order[0][0] <= curve.newest - self.lookback_ns:
            open_time, venue = curve.order.popleft()
            old = curve.bars.pop((venue, open_time))
            old_bucket = self.bucket(open_time)
            curve.volumes[old_bucket] -= old

    def weights(self, symbol: str, start: int, duration: int, slices: int) -> list[Fraction] | None:
        """Historical volume falling in each of `slices` equal intervals of [start, start+duration).

        A bucket partly inside an interval counts in proportion to the overlap. None when the
        symbol has no volume history over the window at all (the caller falls back to TWAP).
        """
        curve = self.symbols.get(symbol)
        if curve is None:
            return None
        out: list[Fraction] = []
        bounds = [start + (i * duration) // slices for i in range(slices)] + [start + duration]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            weight, t = Fraction(0), lo
            while t < hi:
                bucket_start = t - t % self.bucket_ns
                end = min(hi, bucket_start + self.bucket_ns)
                volume = curve.volumes.get(self.bucket(t))
                if volume:
                    weight += Fraction(volume) * Fraction(end - t, self.bucket_ns)
                t = end
            out.append(weight)
        return out if any(out) else None


def vwap_slice_count(duration: int, bucket_ns: int, requested: int | None, max_slices: int) -> int:
    """Slices for a VWAP order: as requested, else one per curve bucket in the duration (capped)."""
    if requested is not None:
        return requested
    return max(1, min(max_slices, -(-duration // bucket_ns)))


__all__ = ["DAY_NS", "VolumeCurve", "duration_ns", "floor_lots", "quantum", "seed_for", "slice_times", "split",
           "vwap_slice_count"]
