"""Finished projection rows on disk: immutable Parquet parts per table, so memory holds only what can still change.

Fills, decisions, audit rows and P&L points never change once written; an order stops changing
once it is complete and quiet, and so do its children; a candle once a newer one of its series
exists. `ProjectionState.take_final` hands such rows over and `ColdStore.write` puts each table's
share in a new part (temp file, fsync, rename, fsync directory). Parts are merged as they
accumulate — whenever the newest part holds at least as many rows as the one before it, the two
become one, streamed batch by batch — so a table has a few parts of geometric sizes, not one per
hand-over, and a merge never holds more than a batch in memory.

The checkpoint manifest names the parts it covers. Loading a checkpoint adopts exactly those and
deletes any other: parts written after the checkpoint hold rows the WAL replay from the checkpoint
derives again. Parts a merge replaced are deleted only once neither of the two checkpoints kept
on disk names them. Only the gateway that owns the directory writes or deletes parts; a reader
(`sq report`) only reads.

Queries see one relation per table: the parts as a pyarrow dataset, read lazily by DuckDB, with
the rows still in memory appended.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

_BATCH_ROWS = 16_384        # rows a merge holds in memory at a time


class ColdStore:
    """The on-disk parts of each projection table, as named by the checkpoint that covers them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts: dict[str, list[str]] = {}          # table -> part file names, oldest rows first
        self._sizes: dict[str, list[int]] = {}         # table -> rows of each part
        self._retired: list[Path] = []                 # merged away, to delete once no checkpoint names them
        self._next = 0

    @property
    def rows(self) -> dict[str, int]:
        """Rows on disk per table."""
        return {name: sum(sizes) for name, sizes in self._sizes.items()}

    def adopt(self, parts: dict[str, list[str]], *, prune: bool) -> None:
        """Take the parts a checkpoint names as the cold rows; with `prune` (the writer), delete every other part."""
        self.parts = {name: list(files) for name, files in parts.items() if files}
        self._retired = []
        if prune and self.root.is_dir():
            for directory in self.root.iterdir():
                if directory.is_dir():
                    keep = set(self.parts.get(directory.name, []))
                    for path in directory.iterdir():
                        if path.name not in keep:
                            path.unlink()
        for name, files in self.parts.items():
            missing = [f for f in files if not (self.root / name / f).is_file()]
            if missing:
                raise FileNotFoundError(f"projection parts named by the checkpoint are missing from "
                                        f"{self.root / name}: {', '.join(missing)}")
        self._sizes = {name: [pq.ParquetFile(self.root / name / f).metadata.num_rows for f in files]
                       for name, files in self.parts.items()}
        numbers = [int(f.split("-")[1].split(".")[0]) for files in self.parts.values() for f in files]
        self._next = max(numbers, default=-1) + 1

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Append each non-empty table as a new durable part, then merge parts that have grown level."""
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            self._add(name, self._write_part(name, [table], table.schema), table.num_rows)
            parts, sizes = self.parts[name], self._sizes[name]
            while len(sizes) >= 2 and sizes[-1] >= sizes[-2]:
                older, newer = parts[-2], parts[-1]
                schema = pq.read_schema(self.root / name / older)
                merged = ds.dataset([str(self.root / name / older), str(self.root / name / newer)], format="parquet",
                                    schema=schema)
                part = self._write_part(name, merged.to_batches(batch_size=_BATCH_ROWS), schema)
                rows = sizes[-2] + sizes[-1]
                del parts[-2:], sizes[-2:]
                self._retired += [self.root / name / older, self.root / name / newer]
                self._add(name, part, rows)

    def collect(self, named: Iterable[dict[str, list[str]]]) -> None:
        """Delete merged-away parts that none of the `named` part lists (the kept checkpoints') mention."""
        keep = {self.root / name / f for parts in named for name, files in parts.items() for f in files}
        still = []
        for path in self._retired:
            if path in keep:
                still.append(path)
            else:
                path.unlink(missing_ok=True)
        self._retired = still

    def dataset(self, name: str, schema: pa.Schema) -> ds.Dataset | None:
        """The table's parts as one lazily read dataset, or None when nothing of it is on disk."""
        files = self.parts.get(name)
        if not files:
            return None
        return ds.dataset([str(self.root / name / f) for f in files], format="parquet", schema=schema)

    def _add(self, name: str, part: str, rows: int) -> None:
        self.parts.setdefault(name, []).append(part)
        self._sizes.setdefault(name, []).append(rows)

    def _write_part(self, name: str, batches: Iterable[pa.Table | pa.RecordBatch], schema: pa.Schema) -> str:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        part = f"part-{self._next:08d}.parquet"
        self._next += 1
        temp = directory / f".{part}.tmp"
        with pq.ParquetWriter(temp, schema) as writer:
            for batch in batches:
                writer.write(batch)
        _fsync(temp)
        os.replace(temp, directory / part)
        _fsync(directory)
        return part


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ColdStore"]
