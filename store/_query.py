"""What a WAL read asks for: the record ranges and the subject pattern, shared by the record and Arrow paths."""

from __future__ import annotations

from dataclasses import dataclass

from store._segments import SegmentInfo


@dataclass(frozen=True, slots=True)
class Query:
    """Which records a read wants: inclusive sequence range, half-open time range, types, subject pattern."""

    start_seq: int | None = None
    end_seq: int | None = None
    start_ts: int | None = None
    end_ts: int | None = None
    types: frozenset[str] | None = None
    subject: str | None = None

    def skips(self, info: SegmentInfo) -> bool:
        """True when a sealed segment cannot hold a matching record (from its seal alone)."""
        seal = info.seal
        assert seal is not None
        return ((self.start_seq is not None and seal.last_seq < self.start_seq)
                or (self.start_ts is not None and seal.max_ts < self.start_ts)
                or (self.end_ts is not None and seal.min_ts >= self.end_ts))

    def past(self, info: SegmentInfo) -> bool:
        """True when this segment and every later one start after the sequence range."""
        return self.end_seq is not None and info.header.first_seq > self.end_seq


class SubjectFilter:
    """NATS wildcard match of a pattern against record subjects, cached per distinct subject.

    A subject matches as stored or as published (without the broker's bucket token, events.partitions),
    so `sq.ord.intent.ACC1` finds that account's intents whichever way they were recorded."""

    def __init__(self, pattern: str) -> None:
        # Imported here: `events` pulls in the NATS client, which the plain WAL tools need not load.
        from events.partitions import plain
        from events.subjects import subject_matches

        self.pattern = pattern
        self._matches = subject_matches
        self._plain = plain
        self._cache: dict[bytes, bool] = {}

    def __call__(self, subject: bytes) -> bool:
        hit = self._cache.get(subject)
        if hit is None:
            text = subject.decode("utf-8", "replace")
            hit = self._matches(self.pattern, text) or self._matches(self.pattern, self._plain(text))
            self._cache[subject] = hit
        return hit
