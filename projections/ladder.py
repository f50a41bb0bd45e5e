"""Time travel in bounded time: a ladder of checkpoints of what `as_of` reads, and the WAL for one rung's tail.

`GET /v1/positions?as_of=` shows positions as they stood at a past broker time. They depend only on
execution reports (fills) and trade summaries (marks), so the ladder folds only `sq.exec.report.*` and
`sq.md.summary.*` (the aggregator's conflated trades) with the projections' own `evolve` (identical semantics) into a small state:
positions, marks, and the report ids still needed to drop copies. Every `every_records` records
or `every_ns` of broker time the gateway writes a rung (that state with the stream positions it
reflects) under DATA_DIR/projections/ladder/. `as_of(t)` loads the newest rung at or before t and
replays at most one interval of the WAL, decoding only those subjects. Retention: every rung of
the last `keep_all_ns` (an hour); before that, the first rung of each hour and one at least every
`keep_every_records` records, so the cost of any `as_of` stays bounded as history grows.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from processors.snapshots import (
    FORMAT_VERSION,
    Expected,
    InvalidSnapshot,
    SnapshotHeader,
    decode_snapshot,
    encode_snapshot,
    read_header,
    state_digest,
)
from projections.state import ProjectionState, evolve
from store.follow import Envelope, history, last_recorded

log = logging.getLogger(__name__)

SUBJECTS = ("sq.exec.report.", "sq.md.summary.")    # what positions and P&L are folded from
# 2: the state keeps the shared order model of each order (ProjectionState.models); 3: marks from trade
# summaries, not every trade
LADDER_VERSION = 3
HOUR_NS = 3_600 * 1_000_000_000
_EXPECTED = Expected(processor="projections", partition="as-of", state_version=LADDER_VERSION,
                     origin=state_digest(ProjectionState()))


def wanted(subject: str) -> bool:
    """Whether a subject changes positions or P&L."""
    return subject.startswith(SUBJECTS)


def _trim(state: ProjectionState) -> None:
    """Drop what positions never read: rows of other tables, and P&L points (the P&L route reads its own
    table up to `as_of`; `last_pnl_ts` stays, so the points a replay adds are the ones the live run added)."""
    state.fills.clear()
    state.audit.clear()
    state.decisions.clear()
    state.orders.clear()
    state.children.clear()
    state.models.clear()
    state.pnl.clear()


class Ladder:
    """Rungs on disk and the live state the next rung is taken from."""

    def __init__(self, wal_root: Path, directory: Path, *, streams: tuple[str, ...], every_records: int = 50_000,
                 every_ns: int = 60 * 1_000_000_000, keep_all_ns: int = HOUR_NS,
                 keep_every_records: int = 200_000) -> None:
        self.wal_root = wal_root
        self.directory = directory
        self.streams = streams
        self.every_records = every_records
        self.every_ns = every_ns
        self.keep_all_ns = keep_all_ns
        self.keep_every_records = keep_every_records
        self._records_at: dict[Path, int] = {}     # rung -> records it reflects (sum of positions), read once
        self.state = ProjectionState()
        self.positions: dict[str, int] = {}
        self.last_stored_ts = 0
        self._records_since = 0
        self._rung_ts = 0
        self._generation = 0

    # -- building -------------------------------------------------------------------------------
    def fold(self, envelope: Envelope) -> None:
        """Take one logged event (any subject: the positions move either way)."""
        self.positions[envelope.stream] = envelope.seq
        # The newest broker time folded in: live, two streams interleave as they arrive, so a rung is
        # stamped with the latest of them and serves only `as_of` times at or after every event in it.
        self.last_stored_ts = max(self.last_stored_ts, envelope.stored_ts)
        self._records_since += 1
        if wanted(envelope.subject):
            evolve(self.state, envelope)
            if len(self.state.audit) > 4096:
                _trim(self.state)

    def due(self) -> bool:
        """Whether enough records or broker time have passed since the last rung."""
        return self._records_since > 0 and (self._records_since >= self.every_records
                                            or self.last_stored_ts - self._rung_ts >= self.every_ns)

    def rung_bytes(self) -> tuple[str, bytes]:
        """The next rung's file name and bytes (on the state's thread: a consistent copy)."""
        _trim(self.state)
        self._generation += 1
        header = SnapshotHeader(format=FORMAT_VERSION, processor=_EXPECTED.processor, partition=_EXPECTED.partition,
                                state_version=LADDER_VERSION, origin=_EXPECTED.origin, positions=dict(self.positions),
                                generation=self._generation, last_stored_ts=self.last_stored_ts,
                                events=self._records_since)
        self._records_since = 0
        self._rung_ts = self.last_stored_ts
        return f"rung-{self.last_stored_ts:020d}.snap", encode_snapshot(header, self.state)

    def write(self, name: str, blob: bytes) -> None:
        """Write a rung atomically, then apply the retention policy (any thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f".{name}.tmp"
        with open(temp, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.directory / name)
        self.prune()

    def catch_up(self) -> None:
        """Start from the newest rung and fold in the WAL after it, writing rungs as history passes (blocking)."""
        newest = self.load(None)
        if newest is not None:
            header, self.state = newest
            self.positions, self.last_stored_ts = dict(header.positions), header.last_stored_ts
            self._rung_ts, self._generation = header.last_stored_ts, header.generation
        until = last_recorded(self.wal_root, self.streams)
        # Only the subjects positions read are decoded: a rung is due by their count or by broker time.
        for envelope in history(self.wal_root, self.streams, self.positions, until=until, source="as-of-ladder",
                                wanted=wanted):
            self.fold(envelope)
            if self.due():
                self.write(*self.rung_bytes())
        for stream, seq in until.items():
            self.positions[stream] = max(self.positions.get(stream, 0), seq)

    # -- reading --------------------------------------------------------------------------------
    def rungs(self) -> list[tuple[int, Path]]:
        """(broker time, file) of every rung on disk, oldest first."""
        if not self.directory.exists():
            return []
        out = []
        for path in self.directory.glob("rung-*.snap"):
            try:
                out.append((int(path.stem.removeprefix("rung-")), path))
            except ValueError:
                continue        # not a name this module writes
        return sorted(out)

    def load(self, at_or_before: int | None) -> tuple[SnapshotHeader, ProjectionState] | None:
        """The newest valid rung at or before a broker time (None: the newest of all); a bad one is skipped."""
        for stamp, path in reversed(self.rungs()):
            if at_or_before is not None and stamp > at_or_before:
                continue
            try:
                header, state = decode_snapshot(path.read_bytes(), _EXPECTED)
            except (InvalidSnapshot, OSError) as exc:
                log.warning("as-of rung skipped", extra={"rung": path.name, "reason": repr(exc)})
                continue
            return header, state
        return None

    def as_of(self, ts_ns: int) -> ProjectionState:
        """Positions and P&L as they stood at broker time `ts_ns`: a rung plus at most one interval (blocking)."""
        rung = self.load(ts_ns)
        state, after = (rung[1], dict(rung[0].positions)) if rung is not None else (ProjectionState(), {})
        until = last_recorded(self.wal_root, self.streams)
        for envelope in history(self.wal_root, self.streams, after, until=until, source="projections-as-of",
                                wanted=wanted):
            if envelope.stored_ts > ts_ns:
                break
            evolve(state, envelope)
        _trim(state)
        return state

    def prune(self) -> None:
        """Keep every rung of the last `keep_all_ns`; before that, the first of each hour and one at least
        every `keep_every_records` records (headers are read only for rungs old enough to be pruned)."""
        rungs = self.rungs()
        if not rungs:
            return
        horizon = rungs[-1][0] - self.keep_all_ns
        kept_hour, kept_records = -1, -self.keep_every_records
        for stamp, path in rungs:
            if stamp >= horizon:
                break
            records = self._records_at.get(path)
            if records is None:
                try:
                    records = self._records_at[path] = sum(read_header(path.read_bytes()).positions.values())
                except (InvalidSnapshot, OSError):
                    path.unlink(missing_ok=True)     # unreadable: as_of would skip it anyway
                    continue
            if stamp // HOUR_NS != kept_hour or records - kept_records >= self.keep_every_records:
                kept_hour, kept_records = stamp // HOUR_NS, records
                continue
            path.unlink(missing_ok=True)
            self._records_at.pop(path, None)


__all__ = ["LADDER_VERSION", "SUBJECTS", "Ladder", "wanted"]
