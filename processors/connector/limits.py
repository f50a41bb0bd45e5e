"""Venue request limits held before sending: sliding windows per limit, and a venue's Retry-After obeyed.

A live adapter asks `VenueLimiter.acquire(costs)` before every request it sends. Every window
is checked first and only then are all charged, so a refused request costs nothing and is never
sent; the refusal (a `LimitRefusal`) names the limit, its size and window, so the child order
becomes a REJECTED ExecutionReport whose reason a trader can act on. When the venue answers 429
or 418 with `Retry-After`, `back_off` blocks every request until then. What the venue reports
it has counted (Binance's `X-MBX-USED-WEIGHT-1M` and `X-MBX-ORDER-COUNT-10S`) can only raise
our count, never lower it, so traffic from another process on the same key is respected too.

Metrics (labels are the venue and the limit's name, never a key or an account):
`sq_connector_throttled_total`, `sq_connector_limit_used`, `sq_connector_retry_after_until_seconds`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

THROTTLED = Counter("sq_connector_throttled_total", "Requests refused before sending by a venue limit or back-off",
                    ["venue", "limit"])
USED = Gauge("sq_connector_limit_used", "Requests counted in the current window of a venue limit", ["venue", "limit"])
RETRY_UNTIL = Gauge("sq_connector_retry_after_until_seconds",
                    "Unix time until which a venue's 429/418 Retry-After blocks requests (0: not blocked)", ["venue"])


@dataclass(frozen=True)
class Limit:
    """At most `count` units (orders, or request weight) per `window_s` seconds."""

    name: str
    count: int
    window_s: float

    def describe(self) -> str:
        """`orders 10/1s` — how a refusal names the limit."""
        return f"{self.name} {self.count}/{self.window_s:g}s"


# Binance spot's documented defaults (GET /api/v3/exchangeInfo `rateLimits`): ORDERS 100 per 10 s
# (and 200,000 a day), REQUEST_WEIGHT 6,000 per minute. Kite Connect: 10 orders a second,
# 200 a minute (and 3,000 a day), 10 other requests a second.
BINANCE_LIMITS = (Limit("orders", 100, 10), Limit("orders_day", 200_000, 86_400), Limit("weight", 6_000, 60))
KITE_LIMITS = (Limit("orders", 10, 1), Limit("orders_minute", 200, 60), Limit("orders_day", 3_000, 86_400),
               Limit("requests", 10, 1))


class LimitRefusal(RuntimeError):
    """A request was not sent: `limit` names what refused it, `retry_in_s` when it could go."""

    def __init__(self, venue: str, limit: str, reason: str, retry_in_s: float) -> None:
        super().__init__(f"{venue} {reason}; not sent (retry in {retry_in_s:.3f}s)")
        self.venue = venue
        self.limit = limit
        self.reason = reason
        self.retry_in_s = retry_in_s


@dataclass
class _Window:
    limit: Limit
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0
    reported: int = 0          # what the venue last said it counted in this window
    reported_at: float = 0.0

    def used(self, now: float) -> int:
        while self.spent and self.spent[0][0] <= now - self.limit.window_s:
            self.total -= self.spent.popleft()[1]
        if now - self.reported_at >= self.limit.window_s:
            self.reported = 0
        return max(self.total, self.reported)

    def free_in(self, now: float, cost: int) -> float:
        """Seconds until `cost` more units fit (0 when they fit now)."""
        excess = self.used(now) + cost - self.limit.count
        if excess <= 0:
            return 0.0
        if not self.spent:
            return self.limit.window_s - (now - self.reported_at)
        freed = 0
        for at, units in self.spent:
            freed += units
            if freed >= excess:
                return max(at + self.limit.window_s - now, 0.0)
        return self.limit.window_s


class VenueLimiter:
    """Holds one venue's request budget: windows per limit, plus the venue's own back-off."""

    def __init__(self, venue: str, limits: tuple[Limit, ...], *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, default_retry_s: float = 60.0) -> None:
        self.venue = venue
        self.default_retry_s = default_retry_s   # a 429 without Retry-After (Kite sends none) blocks this long
        self.windows = {limit.name: _Window(limit) for limit in limits}
        self.clock = clock
        self.wall = wall
        self.blocked_until = 0.0          # on `clock`
        self.block_reason = ""
        self.refused: dict[str, int] = {}

    def acquire(self, costs: Mapping[str, int]) -> None:
        """Charge `costs` (limit name -> units) to every window, or raise LimitRefusal and charge nothing."""
        now = self.clock()
        if now < self.blocked_until:
            self._refuse("retry_after", self.block_reason, self.blocked_until - now)
        for name, cost in costs.items():
            window = self.windows.get(name)
            if window is None or cost <= 0:
                continue
            wait = window.free_in(now, cost)
            if wait > 0:
                used = window.used(now)
                self._refuse(name, f"{window.limit.describe()} limit reached ({used} used, {cost} more asked)", wait)
        for name, cost in costs.items():
            window = self.windows.get(name)
            if window is not None and cost > 0:
                window.spent.append((now, cost))
                window.total += cost
                USED.labels(self.venue, name).set(window.used(now))

    def _refuse(self, limit: str, reason: str, wait: float) -> None:
        self.refused[limit] = self.refused.get(limit, 0) + 1
        THROTTLED.labels(self.venue, limit).inc()
        raise LimitRefusal(self.venue, limit, reason, wait)

    def observe(self, name: str, used: int) -> None:
        """The venue says `used` units are counted in the named window: never count fewer than that."""
        window = self.windows.get(name)
        if window is None:
            return
        now = self.clock()
        window.reported, window.reported_at = used, now
        USED.labels(self.venue, name).set(window.used(now))

    def back_off(self, status: int, retry_after: str | None) -> float:
        """Obey a 429/418 answer: block every request for Retry-After seconds; returns the wait."""
        try:
            wait = float(retry_after) if retry_after is not None else self.default_retry_s
        except ValueError:
            wait = self.default_retry_s
        wait = max(wait, 0.0)
        until = self.clock() + wait
        if until > self.blocked_until:
            self.blocked_until = until
            kind = "IP banned (HTTP 418)" if status == 418 else "rate limited (HTTP 429)"
            self.block_reason = f"retry_after: venue answered {kind}, Retry-After {wait:g}s"
            RETRY_UNTIL.labels(self.venue).set(self.wall() + wait)
        return wait


__all__ = ["BINANCE_LIMITS", "KITE_LIMITS", "RETRY_UNTIL", "THROTTLED", "USED", "Limit", "LimitRefusal",
           "VenueLimiter"]
