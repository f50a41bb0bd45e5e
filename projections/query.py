"""Read-only SQL over the projections with DuckDB: no files, no network, one statement, bounded rows and time."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from projections.memory import give_back_freed_memory

# A dashboard asks a few questions every few seconds; trimming after each burst, not each query,
# keeps the cost (about 2 ms a trim) off the answers while freed pages go back within a second.
GIVE_BACK_EVERY_S = 1.0

# What a query reads a table from: rows in memory, or rows on disk and in memory as a lazily read dataset.
Relation: TypeAlias = pa.Table | ds.Dataset


class QueryError(ValueError):
    """A query was refused or failed; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query as an Arrow table, and whether the row limit cut it short."""

    table: pa.Table
    truncated: bool


class SqlEngine:
    """One locked-down in-memory DuckDB; every query gets its own cursor with the tables registered on it."""

    def __init__(self, *, max_rows: int = 10_000, timeout_s: float = 5.0) -> None:
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        # External access off and configuration locked: no file, URL, ATTACH or COPY, and a
        # query cannot turn them back on.
        self._connection = duckdb.connect(config={"enable_external_access": False, "lock_configuration": True,
                                                  "threads": 1})
        self._next_give_back = 0.0

    def check(self, sql: str) -> None:
        """Refuse anything but a single read-only SELECT, naming what was found."""
        try:
            statements = self._connection.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(f"sql does not parse: {str(exc).splitlines()[0]}") from exc
        if len(statements) != 1:
            raise QueryError(f"sql must be exactly one statement, found {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise QueryError(f"sql must be a read-only SELECT, found {kind.name}")

    def query(self, sql: str, tables: Mapping[str, Relation], *, parameters: list[object] | None = None,
              max_rows: int | None = None) -> QueryResult:
        """Run one SELECT over `tables` (registered zero-copy); blocks, so call it from a worker thread."""
        self.check(sql)
        limit = min(max_rows or self.max_rows, self.max_rows)
        cursor = self._connection.cursor()
        timer = threading.Timer(self.timeout_s, cursor.interrupt)
        try:
            for name, table in tables.items():
                cursor.register(name, table)
            timer.start()
            relation = cursor.sql(sql, params=parameters) if parameters else cursor.sql(sql)
            # The row limit goes into the plan: ORDER BY over a whole table then becomes a top-N that
            # holds limit rows, not a sort that holds the table (memory would grow with history).
            reader = relation.limit(limit + 1).to_arrow_reader(limit + 1)
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > limit:
                    break
        except duckdb.InterruptException as exc:
            raise QueryError(f"query ran longer than {self.timeout_s:g}s and was stopped") from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()
            cursor.close()
        table = pa.Table.from_batches(batches, schema=reader.schema)
        self._give_back_freed_memory()
        return QueryResult(table.slice(0, limit), truncated=table.num_rows > limit)

    def _give_back_freed_memory(self) -> None:
        # A scan frees everything it read but its answer; without this the pages stay with the
        # allocators (glibc's heap, DuckDB's jemalloc) and the process grows with its history.
        now = time.monotonic()
        if now >= self._next_give_back:
            self._next_give_back = now + GIVE_BACK_EVERY_S
            give_back_freed_memory()
