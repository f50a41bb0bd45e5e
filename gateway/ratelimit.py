"""Token-bucket rate limits keyed by user or client address, with the wait a 429 reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """One bucket per key: `capacity` requests in a burst, refilled at `rate` per second."""

    rate: float
    capacity: float
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend `cost` from the key's bucket: 0.0 if allowed, else the seconds until it would be."""
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) > self.max_keys:
                self._evict_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def peek(self, key: str, now: float, cost: float = 1.0) -> float:
        """Like take() but spends nothing: 0.0 if `cost` is available now, else the seconds to wait."""
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def _evict_full(self, now: float) -> None:
        # Buckets that have refilled completely carry no information: drop them to bound memory.
        self._buckets = {key: (tokens, stamp) for key, (tokens, stamp) in self._buckets.items()
                         if tokens + (now - stamp) * self.rate < self.capacity}
