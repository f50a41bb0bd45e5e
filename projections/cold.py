"""Finished projection rows on disk: immutable Parquet parts per table, so memory holds only what can still change.

Fills, decisions, audit rows and P&L points never change once written; an order stops changing
once it is complete and quiet, and so do its children; a candle once a newer one of its series
exists. Events that still arrive for rows on disk (a cancel or report for an order already there,
a copy of a bar older than its series' newest on disk) change nothing but the orders' audit trail.
`ProjectionState.final` names such rows and `ColdStore.write` puts each table's
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

_BATCH_ROWS = 16_384        # rows a merge holds in memory at a time


@dataclass
class ColdUpdate:
    """What a `ColdStore.write` produced: the new part lists and sizes, and the parts merged away."""

    parts: dict[str, list[str]]
    sizes: dict[str, list[int]]
    retired: list[Path]


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

    def adopt(self, parts: dict[str, list[str]], *, prune: bool, also_named: Iterable[dict[str, list[str]]] = ()) -> None:
        """Take the parts a checkpoint names as the cold rows.

        With `prune` (the writer), delete every other part but those `also_named` (by the older
        checkpoint kept on disk, which a reader may still be using)."""
        self.parts = {name: list(files) for name, files in parts.items() if files}
        self._retired = []
        if prune and self.root.is_dir():
            keep = {(name, f) for named in (self.parts, *also_named) for name, files in named.items() for f in files}
            for directory in self.root.iterdir():
                if directory.is_dir():
                    for path in directory.iterdir():
                        if (directory.name, path.name) not in keep:
                            path.unlink()
                        elif path.name not in self.parts.get(directory.name, []):
                            self._retired.append(path)
        for name, files in self.parts.items():
            missing = [f for f in files if not (self.root / name / f).is_file()]
            if missing:
                raise FileNotFoundError(f"projection parts named by the checkpoint are missing from "
                                        f"{self.root / name}: {', '.join(missing)}")
        self._sizes = {name: [pq.ParquetFile(self.root / name / f).metadata.num_rows for f in files]
                       for name, files in self.parts.items()}
        on_disk = self.root.glob("*/part-*.parquet") if self.root.is_dir() else []
        self._next = max((int(path.name.split("-")[1].split(".")[0]) for path in on_disk), default=-1) + 1

    def write(self, tables: dict[str, pa.Table]) -> ColdUpdate:
        """Write each non-empty table as a new durable part and merge parts that have grown level.

        Only files change: the store's own lists change when the caller `apply`s the update, on
        the thread that reads them, together with dropping the rows from memory."""
        update = ColdUpdate({name: list(files) for name, files in self.parts.items()},
                            {name: list(sizes) for name, sizes in self._sizes.items()}, [])
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            parts, sizes = update.parts.setdefault(name, []), update.sizes.setdefault(name, [])
            parts.append(self._write_part(name, [table], table.schema))
            sizes.append(table.num_rows)
            while len(sizes) >= 2 and sizes[-1] >= sizes[-2]:
                older, newer = self.root / name / parts[-2], self.root / name / parts[-1]
                part = self._write_part(name, _batches(older, newer), pq.read_schema(older))
                rows = sizes[-2] + sizes[-1]
                del parts[-2:], sizes[-2:]
                update.retired += [older, newer]
                parts.append(part)
                sizes.append(rows)
        return update

    def apply(self, update: ColdUpdate) -> None:
        """Make written parts the cold rows (see `write`)."""
        self.parts, self._sizes = update.parts, update.sizes
        self._retired += update.retired

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

    def _write_part(self, name: str, batches: Iterable[pa.Table | pa.RecordBatch], schema: pa.Schema) -> str:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        part = f"part-{self._next:08d}.parquet"
        self._next += 1
        temp = directory / f".{part}.tmp"
        with pq.ParquetWriter(temp, schema) as writer:
            for batch in batches:
                writer.write(batch, row_group_size=_BATCH_ROWS)
        _fsync(temp)
        os.replace(temp, directory / part)
        _fsync(directory)
        return part


def _batches(*paths: Path) -> Iterator[pa.RecordBatch]:
    """The parts' rows in order, one row group at a time on this thread."""
    # Not a dataset scan: that reads ahead up to 16 batches of 4 files on Arrow's thread pools, a
    # peak that grows with the parts and leaves the process bigger after every merge.
    for path in paths:
        with pq.ParquetFile(path) as part:
            yield from part.iter_batches(batch_size=_BATCH_ROWS, use_threads=False)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ColdStore", "ColdUpdate"]
