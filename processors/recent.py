"""Keys remembered for a window of event time, then forgotten a slice at a time: duplicate memory that stays bounded.

A processor must recognise a copy of an input it already handled (an intent already decided, a
report of a child already finished) but cannot remember every id forever: memory would grow with
every order. Processors follow their streams with ordered consumers (store.follow), which deliver
each stream message once, and rebuild from the WAL in the same order, so a copy can only be a
second message with the same event id in the stream. JetStream drops those within its 120 s
duplicate window (events.subjects); a copy gets past it only when republished later than that —
a publish retried for longer, or a restarted processor republishing outputs the recorder had not
yet logged. Such a copy trails its original by a few minutes at most, so an id needs remembering
only a little longer than that; a copy arriving later than the window is handled as new.

`Recent` keeps entries in time slices: an entry lives in the slice of the event time that added
it, and a slice is dropped whole once event time is a full window past its end, so every entry is
remembered for at least `window_ns` and less than `window_ns` plus one slice. Time is the `ts` of
the events handled, never the clock, so a rebuild from the WAL forgets exactly what the live run
forgot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# How long finished orders' and decided intents' ids are remembered to drop copies: past JetStream's
# 120 s duplicate window with room for a copy republished a few minutes late.
REDELIVERY_WINDOW_NS = 300 * 1_000_000_000


class Recent(Generic[K, V]):
    """A mapping whose entries are forgotten once event time has moved `window_ns` past them."""

    __slots__ = ("window_ns", "slice_ns", "_slices")

    def __init__(self, window_ns: int = REDELIVERY_WINDOW_NS, slices: int = 4) -> None:
        if window_ns <= 0 or slices <= 0:
            raise ValueError(f"window_ns ({window_ns}) and slices ({slices}) must be greater than 0")
        self.window_ns = window_ns
        self.slice_ns = max(1, window_ns // slices)
        self._slices: deque[tuple[int, dict[K, V]]] = deque()   # (slice number, entries), oldest first

    def advance(self, ts: int) -> None:
        """Move event time to `ts`, dropping every slice that ended a full window before it."""
        slices, size = self._slices, self.slice_ns
        while slices and (slices[0][0] + 1) * size + self.window_ns <= ts:
            slices.popleft()

    def set(self, key: K, value: V, ts: int) -> None:
        """Remember `key` as of event time `ts` (an earlier entry for it is replaced)."""
        self.advance(ts)
        number = ts // self.slice_ns
        slices = self._slices
        if not slices or number > slices[-1][0]:
            slices.append((number, {}))
        # A late event (ts before the newest slice) goes in the newest slice: remembered longer, never shorter.
        for _, entries in slices:
            entries.pop(key, None)
        slices[-1][1][key] = value

    def add(self, key: K, ts: int) -> None:
        """Remember `key` as seen at event time `ts` (set semantics)."""
        self.set(key, None, ts)  # type: ignore[arg-type]

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value remembered for `key`, or `default` when it is unknown or forgotten."""
        for _, entries in reversed(self._slices):
            if key in entries:
                return entries[key]
        return default

    def pop(self, key: K) -> V | None:
        """Forget `key` now; its value, or None when it was not remembered."""
        for _, entries in self._slices:
            if key in entries:
                return entries.pop(key)
        return None

    def __contains__(self, key: object) -> bool:
        return any(key in entries for _, entries in self._slices)

    def __len__(self) -> int:
        return sum(len(entries) for _, entries in self._slices)

    def __iter__(self) -> Iterator[K]:
        for _, entries in self._slices:
            yield from entries


__all__ = ["REDELIVERY_WINDOW_NS", "Recent"]
