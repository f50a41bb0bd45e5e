"""Aggregator configuration: bar intervals, book-top cadence and book limits; every bad field reported at once."""

from __future__ import annotations

import re

import msgspec


class ConfigError(ValueError):
    """One or more config fields are invalid; `problems` lists (field, value, limit) for each."""

    def __init__(self, problems: list[tuple[str, object, str]]) -> None:
        super().__init__("; ".join(f"{name} {value!r} {limit}" for name, value, limit in problems))
        self.problems = problems


_UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9}


def interval_to_ns(interval: str) -> int | None:
    """Nanoseconds for an interval token (1s..1d), or None when it is not one."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", interval)
    if not match:
        return None
    ns = int(match.group(1)) * _UNIT_NS[match.group(2)]
    return ns if ns <= _UNIT_NS["d"] else None


class AggregatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the aggregator builds, and the bounds on its books."""

    intervals: tuple[str, ...] = ("1m",)
    top_every_ms: int = 0                 # at most one BookTop per symbol per this many ms of event time
    summary_every_ms: int = 50            # at most one TradeSummary per symbol per this many ms (0: one per trade)
    max_buffered_deltas: int = 10_000     # per symbol, while waiting for a snapshot
    max_ticks: int = 1 << 18              # dense book window per symbol (3 int64 arrays this long)

    def validate(self) -> AggregatorConfig:
        """Return self, or raise ConfigError naming every bad field with its value and limit."""
        problems: list[tuple[str, object, str]] = []
        if not self.intervals:
            problems.append(("intervals", self.intervals, "must name at least one interval"))
        for index, interval in enumerate(self.intervals):
            if interval_to_ns(interval) is None:
                problems.append((f"intervals[{index}]", interval, "must be <n><s|m|h|d> within 1s..1d"))
        if not 0 <= self.top_every_ms <= 86_400_000:
            problems.append(("top_every_ms", self.top_every_ms, "must be within 0..86400000"))
        if not 0 <= self.summary_every_ms <= 60_000:
            problems.append(("summary_every_ms", self.summary_every_ms, "must be within 0..60000"))
        if not 1 <= self.max_buffered_deltas <= 1_000_000:
            problems.append(("max_buffered_deltas", self.max_buffered_deltas, "must be within 1..1000000"))
        if not 1024 <= self.max_ticks <= 1 << 24:
            problems.append(("max_ticks", self.max_ticks, f"must be within 1024..{1 << 24}"))
        if problems:
            raise ConfigError(problems)
        return self


__all__ = ["AggregatorConfig", "ConfigError", "interval_to_ns"]
