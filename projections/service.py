"""The projections at run time: load a checkpoint, catch up from the WAL, follow JetStream, answer queries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from prometheus_client import Gauge

from events.bus import Bus
from events.stopping import Stopped
from events.subjects import STREAM_MD, STREAM_TRADING, patterns_by_stream, subscribed
from projections.checkpoint import (
    cold_manifest,
    load_checkpoint,
    named_parts,
    snapshot_tables,
    write_checkpoint,
)
from projections.cold import ColdStore, ColdUpdate
from projections.ladder import Ladder
from projections.memory import give_back_freed_memory
from projections.query import QueryResult, Relation, SqlEngine
from projections.state import ProjectionState, evolve
from projections.tables import ROW_TYPES, TableCache, arrow_schema, from_table, held_rows, to_table
from store.follow import Envelope, HistoryGone, LiveFeed, history, last_recorded

log = logging.getLogger(__name__)

STREAMS = (STREAM_TRADING.name, STREAM_MD.name)
# What the read models are folded from: the whole order path, and trade summaries (marks), bars (candles) and
# book tops; never depth updates, the bulk of market data, which no table holds.
# What the tables fold (projections.state): the order path, the kill switch, marks, bars and tops.
SUBSCRIPTIONS = ("sq.ord.>", "sq.risk.>", "sq.exec.>", "sq.ctl.killswitch.>", "sq.md.summary.>", "sq.md.bar.>",
                 "sq.md.top.>")
_reads = subscribed(SUBSCRIPTIONS)
HISTORY_MISSING = Gauge("sq_projection_history_missing_through_seq",
                        "Stream sequences up to this one were gone from the broker and from any WAL here: "
                        "the read models lack them", ["stream"])
APPLIED_SEQ = Gauge("sq_projection_applied_seq", "Last stream sequence folded into the projections", ["stream"])


def _read_rows(cold: ds.Dataset | None, name: str) -> list[Any]:
    return [] if cold is None else from_table(cold.to_table(), ROW_TYPES[name])


class Projections:
    """Owns the read models of one gateway process; all mutation happens on the event loop's thread."""

    def __init__(self, wal_root: Path, checkpoint_dir: Path, *, checkpoint_every_s: float = 30.0,
                 engine: SqlEngine | None = None, spill_after_rows: int | None = None) -> None:
        self.wal_root = wal_root
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every_s = checkpoint_every_s
        # With a threshold, finished rows go to disk (projections.cold) once this many append-only
        # rows are in memory; without one (readers such as `sq report`), everything stays in memory.
        self.spill_after_rows = spill_after_rows
        self.cold = ColdStore(checkpoint_dir / "cold")
        # Checkpoints of what `as_of` reads, so time travel replays at most one interval (projections.ladder).
        self.ladder = Ladder(wal_root, checkpoint_dir / "ladder", streams=STREAMS)
        self.state = ProjectionState()
        self.cache = TableCache()
        self.engine = engine or SqlEngine()
        self.caught_up = asyncio.Event()
        self._feed: LiveFeed | None = None
        self._checkpointed_version = 0
        self._previous_parts: dict[str, list[str]] = {}   # parts the previous checkpoint names
        # The gateway's memo of answered reads (question -> (table version, rows)); see routes_query.
        self.answers: dict[tuple[object, ...], tuple[int, list[dict[str, Any]]]] = {}
        self.history_missing: dict[str, int] = {}      # stream -> last sequence the read models lack

    def load_and_catch_up(self) -> dict[str, int]:
        """Start from the latest checkpoint (if any) and fold in every WAL record after it."""
        loaded = load_checkpoint(self.checkpoint_dir)
        if loaded is not None:
            self.state = loaded
            self._checkpointed_version = loaded.version
        self.cold.adopt(self.state.cold_parts, prune=self.spill_after_rows is not None,
                        also_named=named_parts(self.checkpoint_dir))
        self._previous_parts = {name: list(files) for name, files in self.state.cold_parts.items()}
        until = last_recorded(self.wal_root, STREAMS)
        for n, envelope in enumerate(history(self.wal_root, STREAMS, dict(self.state.stream_positions), until=until,
                                             source="projections", wanted=_reads)):
            evolve(self.state, envelope)
            if n % 4096 == 4095:
                self.spill_if_due()
        for stream in STREAMS:
            self.state.stream_positions[stream] = max(self.state.stream_positions.get(stream, 0), until[stream])
        return dict(self.state.stream_positions)

    async def follow(self, bus: Bus, stop: asyncio.Event) -> None:
        """Catch up, then apply live events until `stop`, checkpointing every so often."""
        positions = await asyncio.to_thread(self.load_and_catch_up)
        await asyncio.to_thread(self.ladder.catch_up)
        for stream, seq in positions.items():
            self.ladder.positions[stream] = max(self.ladder.positions.get(stream, 0), seq)
        log.info("projections caught up", extra={"positions": positions, "version": self.state.version})
        while True:
            self._feed = LiveFeed(bus, STREAMS, positions, source="projections",
                                  filter_subjects=patterns_by_stream(SUBSCRIPTIONS, STREAMS), stop=stop)
            try:
                await self._feed.start()
                break
            except HistoryGone as gone:
                # No WAL here (a gateway pod without one) and the broker's retention dropped the start
                # of history: serve what is left rather than nothing, and say so (metric, /readyz).
                self.history_missing[gone.stream] = gone.first_held - 1
                HISTORY_MISSING.labels(gone.stream).set(gone.first_held - 1)
                log.error("projections start after history the broker no longer holds; mount the WAL "
                          "(DATA_DIR/wal) to serve all of it", extra={"stream": gone.stream,
                                                                      "missing_through": gone.first_held - 1})
                positions[gone.stream] = gone.first_held - 1
        self.caught_up.set()
        last_checkpoint = time.monotonic()
        try:
            while True:
                try:
                    first = await self._feed.get(timeout=self.checkpoint_every_s)
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
            self.ladder.fold(envelope)
            APPLIED_SEQ.labels(envelope.stream).set(envelope.seq)

    async def checkpoint(self) -> None:
        """Hand finished rows to disk when enough have gathered, then write a checkpoint if anything changed."""
        if self._spill_due():
            # Rows stay in memory (and in answers) while their parts are written in a thread; they
            # are dropped from memory in the same loop step that makes the parts visible.
            final, tables = self._final_tables()
            self._forget(final, await asyncio.to_thread(self.cold.write, tables))
        if self.ladder.due():
            await asyncio.to_thread(self.ladder.write, *self.ladder.rung_bytes())
        if self.state.version == self._checkpointed_version:
            return
        # Tables are materialised on the loop (the state must not change under them), written in a thread.
        tables = snapshot_tables(self.state, self.cache)
        await asyncio.to_thread(write_checkpoint, self.checkpoint_dir, tables, dict(self.state.stream_positions),
                                self.state.version, cold_manifest(self.state))
        self._checkpointed_version = self.state.version
        # write_checkpoint keeps this checkpoint and the one before: parts either names stay on disk.
        self.cold.collect([self._previous_parts, self.state.cold_parts])
        self._previous_parts = {name: list(files) for name, files in self.state.cold_parts.items()}
        give_back_freed_memory()

    def spill_if_due(self) -> None:
        """Hand finished rows to disk now if enough have gathered (blocking: catch-up and tools)."""
        if self._spill_due():
            final, tables = self._final_tables()
            self._forget(final, self.cold.write(tables))

    def _spill_due(self) -> bool:
        return self.spill_after_rows is not None and self.state.final_rows() >= self.spill_after_rows

    def _final_tables(self) -> tuple[dict[str, list[Any]], dict[str, pa.Table]]:
        """The rows no event can change any more, and the same as Arrow tables (on the state's thread)."""
        final = self.state.final()
        return final, {name: to_table(rows, ROW_TYPES[name]) for name, rows in final.items()}

    def _forget(self, final: dict[str, list[Any]], update: ColdUpdate) -> None:
        """Make the written parts the rows on disk and drop the same rows from memory, in one step."""
        self.cold.apply(update)
        self.state.forget(final)
        self.state.cold_parts = {name: list(files) for name, files in self.cold.parts.items()}
        log.info("projection rows moved to disk", extra={"rows": {n: len(r) for n, r in final.items()},
                                                          "on_disk": self.cold.rows})

    def lag(self) -> int:
        """Events received live but not yet folded in."""
        return self._feed.lag() if self._feed is not None else 0

    def as_of(self, ts_ns: int) -> ProjectionState:
        """Positions and P&L as they stood at broker time `ts_ns`: the nearest rung of the ladder at or
        before it plus at most one interval of the WAL (blocking)."""
        return self.ladder.as_of(ts_ns)

    def tables(self, state: ProjectionState | None = None, accounts: tuple[str, ...] | None = None,
               names: tuple[str, ...] | None = None) -> dict[str, Relation]:
        """The named tables (default all): rows on disk then in memory, limited to rows of `accounts`
        (tables without an account are shared)."""
        source = state or self.state
        cache = self.cache if state is None else TableCache()
        out: dict[str, Relation] = {}
        for name in names or tuple(ROW_TYPES):
            table = cache.table(source, name)
            cold = self.cold.dataset(name, table.schema) if state is None else None
            if accounts is not None and "account" in table.column_names:
                if cold is not None:
                    out[name] = ds.dataset([cold, ds.dataset(table)]).filter(pc.field("account").isin(list(accounts)))
                    continue
                table = table.filter(pc.is_in(table["account"], value_set=pa.array(list(accounts), pa.string())))
            out[name] = table if cold is None else ds.dataset([cold, ds.dataset(table)])
        return out

    def rows(self, name: str) -> list[Any]:
        """Every row of one table, on disk then in memory, as row Structs (blocking: tools such as `sq report`).

        Rows from disk carry the table's 12-decimal money, as queries show it."""
        cold = self.cold.dataset(name, arrow_schema(ROW_TYPES[name]))
        return [*_read_rows(cold, name), *held_rows(self.state, name)]

    async def rows_off_loop(self, *names: str) -> dict[str, list[Any]]:
        """`rows` of several tables for the event loop: memory copied in one loop step (a consistent
        snapshot), the parts on disk read in a thread."""
        held = {name: list(held_rows(self.state, name)) for name in names}
        cold = {name: self.cold.dataset(name, arrow_schema(ROW_TYPES[name])) for name in names}
        read = await asyncio.to_thread(lambda: {name: _read_rows(cold[name], name) for name in names})
        return {name: [*read[name], *held[name]] for name in names}

    def query(self, sql: str, tables: Mapping[str, Relation], parameters: list[object] | None = None,
              max_rows: int | None = None) -> QueryResult:
        """Run read-only SQL over the given tables (blocking; call from a worker thread)."""
        return self.engine.query(sql, tables, parameters=parameters, max_rows=max_rows)
