"""`sq store export`: sealed segments as Parquet, partitioned Hive-style by UTC day and event type.

Layout under OUT_DIR (readable by DuckDB `read_parquet('OUT/**/*.parquet', hive_partitioning=true)`,
`pandas.read_parquet(OUT)`, `polars.scan_parquet('OUT/**/*.parquet', hive_partitioning=True)`):

    date=2024-03-01/type=Trade/part-SQ_MD-00000000000000000001.parquet

`date` is the UTC date of the record time (the broker's storage time) and `type` the event
type name; neither is repeated inside the files. A record with no type goes to
`type=__HIVE_DEFAULT_PARTITION__` (Hive's name for a null partition value); a type with
characters outside `[A-Za-z0-9_-]` is percent-encoded. Each file holds one segment's records
of that day and type in sequence order: stream, seq, ts, subject, id, correlation_id, payload.

Only sealed segments are exported: they never change, so a segment exported once is done.
`_sq_export_manifest.json` lists every exported segment with its chain hash and files; a
re-export skips those, and a crash mid-segment just re-exports it (file names are a pure
function of the segment, and each file appears by an atomic rename).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec

from store._files import fsync_dir, write_file_atomically
from store._progress import Progress
from store._segments import SegmentInfo, load_layout
from store.reader import WalReader
from store.replay import event_ids, recorded_streams

MANIFEST = "_sq_export_manifest.json"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


class ExportedSegment(msgspec.Struct, frozen=True):
    """One manifest entry: a segment that is fully exported."""

    chain_hash: str
    records: int
    files: list[str]


class ExportManifest(msgspec.Struct):
    """Every exported segment, keyed by `STREAM/segment-file-name`."""

    version: int = 1
    segments: dict[str, ExportedSegment] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class ExportReport:
    """What an export run wrote and skipped."""

    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: int = 0
    records: int = 0
    unsealed: list[str] = field(default_factory=list)


def partition_value(value: str) -> str:
    """A path-safe Hive partition value."""
    if not value:
        return NULL_PARTITION
    return value if _SAFE.match(value) else quote(value, safe="")


def load_manifest(out_dir: Path) -> ExportManifest:
    """The manifest, or an empty one for a new export directory."""
    path = out_dir / MANIFEST
    if not path.exists():
        return ExportManifest()
    return msgspec.json.decode(path.read_bytes(), type=ExportManifest)


def export(wal_root: Path | str, out_dir: Path | str, *, streams: list[str] | None = None,
           progress: Progress | None = None) -> ExportReport:
    """Export every sealed segment not yet in the manifest; return what was done."""
    root, out = Path(wal_root), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    report = ExportReport()
    for stream in streams or recorded_streams(root):
        reader = WalReader(root / stream, persist_index=False)
        for info in load_layout(root / stream).segments:
            key = f"{stream}/{info.path.name}"
            if info.seal is None:
                report.unsealed.append(key)
                continue
            done = manifest.segments.get(key)
            if done is not None and done.chain_hash == info.seal.chain_hash.hex() \
                    and all((out / name).exists() for name in done.files):
                report.skipped.append(key)
                continue
            files = _export_segment(reader, info, stream, out)
            manifest.segments[key] = ExportedSegment(info.seal.chain_hash.hex(), info.seal.count, files)
            # The manifest is written after each segment, so an interrupted export loses at most one.
            write_file_atomically(out / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest), indent=1),
                                  durable=True)
            report.exported.append(key)
            report.files += len(files)
            report.records += info.seal.count
            if progress is not None:
                progress.add(info.seal.count, info.size)
    return report


def _export_segment(reader: WalReader, info: SegmentInfo, stream: str, out: Path) -> list[str]:
    """Write one sealed segment's records as one file per (day, type); return their relative paths."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    batches = list(reader.sealed_batches(info, views=False))
    table = pa.Table.from_batches(batches)
    payloads = table.column("payload").to_pylist()
    ids = [event_ids(payload) for payload in payloads]
    day = pc.strftime(pc.cast(pc.cast(table.column("ts"), pa.timestamp("ns", tz="UTC")), pa.date32()),
                      format="%Y-%m-%d")
    columns: dict[str, Any] = {
        "stream": pa.array([stream] * table.num_rows, type=pa.string()),
        "seq": table.column("seq"),
        "ts": table.column("ts"),
        "subject": table.column("subject"),
        "id": pa.array([pair[0] for pair in ids], type=pa.string()),
        "correlation_id": pa.array([pair[1] for pair in ids], type=pa.string()),
        "payload": table.column("payload"),
    }
    data = pa.table(columns)
    keys = pa.table({"date": day, "type": table.column("type")})
    files = []
    for group in keys.group_by(["date", "type"]).aggregate([]).to_pylist():
        mask = pc.and_(pc.equal(keys.column("date"), group["date"]), pc.equal(keys.column("type"), group["type"]))
        relative = (f"date={group['date']}/type={partition_value(group['type'])}/"
                    f"part-{stream}-{info.path.stem}.parquet")
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(data.filter(mask), tmp, compression="zstd")
        # Durable before the manifest says it exists (the manifest write fsyncs its own directory).
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        files.append(relative)
    return sorted(files)


__all__ = ["MANIFEST", "ExportManifest", "ExportReport", "ExportedSegment", "export", "load_manifest",
           "partition_value"]
