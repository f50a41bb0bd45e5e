"""The projections at run time: load a checkpoint, catch up from the WAL, follow JetStream, answer queries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Gauge

from events.bus import Bus
from events.stopping import Stopped, unless_stopped
from events.subjects import STREAM_MD, STREAM_TRADING
from projections.checkpoint import load_checkpoint, snapshot_tables, write_checkpoint
from projections.query import QueryResult, SqlEngine
from projections.state import ProjectionState, evolve
from projections.tables import ROW_TYPES, TableCache
from store.follow import Envelope, LiveFeed, history, last_recorded

log = logging.getLogger(__name__)

STREAMS = (STREAM_TRADING.name, STREAM_MD.name)
APPLIED_SEQ = Gauge("sq_projection_applied_seq", "Last stream sequence folded into the projections", ["stream"])


class Projections:
    """Owns the read models of one gateway process; all mutation happens on the event loop's thread."""

    def __init__(self, wal_root: Path, checkpoint_dir: Path, *, checkpoint_every_s: float = 30.0,
                 engine: SqlEngine | None = None) -> None:
        self.wal_root = wal_root
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every_s = checkpoint_every_s
        self.state = ProjectionState()
        self.cache = TableCache()
        self.engine = engine or SqlEngine()
        self.caught_up = asyncio.Event()
        self._feed: LiveFeed | None = None
        self._checkpointed_version = 0
        # The gateway's memo of answered reads (question -> (table version, rows)); see routes_query.
        self.answers: dict[tuple[object, ...], tuple[int, list[dict[str, Any]]]] = {}

    def load_and_catch_up(self) -> dict[str, int]:
        """Start from the latest checkpoint (if any) and fold in every WAL record after it."""
        loaded = load_checkpoint(self.checkpoint_dir)
        if loaded is not None:
            self.state = loaded
            self._checkpointed_version = loaded.version
        until = last_recorded(self.wal_root, STREAMS)
        for envelope in history(self.wal_root, STREAMS, dict(self.state.stream_positions), until=until,
                                source="projections"):
            evolve(self.state, envelope)
        for stream in STREAMS:
            self.state.stream_positions[stream] = max(self.state.stream_positions.get(stream, 0), until[stream])
        return dict(self.state.stream_positions)

    async def follow(self, bus: Bus, stop: asyncio.Event) -> None:
        """Catch up, then apply live events until `stop`, checkpointing every so often."""
        positions = await asyncio.to_thread(self.load_and_catch_up)
        log.info("projections caught up", extra={"positions": positions, "version": self.state.version})
        self._feed = LiveFeed(bus, STREAMS, positions, source="projections")
        await self._feed.start()
        self.caught_up.set()
        last_checkpoint = time.monotonic()
        try:
            while True:
                try:
                    first = await unless_stopped(self._feed.get(), stop, timeout=self.checkpoint_every_s)
                    self.apply_all([first, *self._feed.drain(1023)])
                except Stopped:
                    break
                except TimeoutError:
                    pass  # quiet: fall through to the checkpoint clock
                if time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                    await self.checkpoint()
                    last_checkpoint = time.monotonic()
        finally:
            await self._feed.stop()
            await self.checkpoint()

    def apply_all(self, envelopes: Iterable[Envelope]) -> None:
        """Fold live events in."""
        for envelope in envelopes:
            evolve(self.state, envelope)
            APPLIED_SEQ.labels(envelope.stream).set(envelope.seq)

    async def checkpoint(self) -> None:
        """Write a checkpoint if anything changed since the last one."""
        if self.state.version == self._checkpointed_version:
            return
        # Tables are materialised on the loop (the state must not change under them), written in a thread.
        tables = snapshot_tables(self.state, self.cache)
        await asyncio.to_thread(write_checkpoint, self.checkpoint_dir, tables, dict(self.state.stream_positions),
                                self.state.version)
        self._checkpointed_version = self.state.version

    def lag(self) -> int:
        """Events received live but not yet folded in."""
        return self._feed.lag() if self._feed is not None else 0

    def as_of(self, ts_ns: int) -> ProjectionState:
        """The read models as they stood at broker time `ts_ns`, rebuilt from the WAL (blocking)."""
        state = ProjectionState()
        for envelope in history(self.wal_root, STREAMS, {}, until=last_recorded(self.wal_root, STREAMS),
                                source="projections-as-of"):
            if envelope.stored_ts > ts_ns:
                break
            evolve(state, envelope)
        return state

    def tables(self, state: ProjectionState | None = None, accounts: tuple[str, ...] | None = None,
               names: tuple[str, ...] | None = None) -> dict[str, pa.Table]:
        """The named tables (default all), limited to rows of `accounts` (tables without an account are shared)."""
        source = state or self.state
        cache = self.cache if state is None else TableCache()
        tables = {name: cache.table(source, name) for name in (names or tuple(ROW_TYPES))}
        if accounts is None:
            return tables
        allowed = pa.array(list(accounts), type=pa.string())
        return {name: table.filter(pc.is_in(table["account"], value_set=allowed))
                if "account" in table.column_names else table for name, table in tables.items()}

    def query(self, sql: str, tables: dict[str, pa.Table], parameters: list[object] | None = None,
              max_rows: int | None = None) -> QueryResult:
        """Run read-only SQL over the given tables (blocking; call from a worker thread)."""
        return self.engine.query(sql, tables, parameters=parameters, max_rows=max_rows)
