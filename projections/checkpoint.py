"""Parquet checkpoints of the read models with the WAL positions they reflect, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from processors.positions import Position
from projections.rows import AuditRow, CandleRow, ChildRow, DecisionRow, FillRow, OrderRow, PnlPoint, TopRow
from projections.state import ProjectionState, model_of
from projections.tables import TableCache, from_table, to_table

FORMAT_VERSION = 2         # 2: audit rows name their account; recent ids; rows on disk
_encoder = msgspec.json.Encoder(decimal_format="string")
_position_decoder = msgspec.json.Decoder(Position)
_CURRENT = "CURRENT"


class _RecentId(msgspec.Struct, kw_only=True):
    kind: str
    id: str
    ts: int


class _Mark(msgspec.Struct, kw_only=True):
    """A symbol's last traded price, checkpointed so unrealized P&L survives a restart."""

    symbol: str
    price: Decimal
    ts: int


def snapshot_tables(state: ProjectionState, cache: TableCache) -> dict[str, pa.Table]:
    """Every table a checkpoint holds, taken on the loop so the state cannot change underneath."""
    tables = dict(cache.all(state))
    # Positions carry exact cost sums (up to 24 decimals); kept as JSON text so a restart is exact.
    tables["position_state"] = pa.table({"json": [_encoder.encode(p).decode() for p in state.positions.values()]},
                                        schema=pa.schema([("json", pa.string())]))
    tables["marks"] = to_table([_Mark(symbol=s, price=p, ts=t) for s, (p, t) in sorted(state.marks.items())], _Mark)
    # Ids a copy of which must still be dropped: seen reports, orders and children already on disk.
    recent = [_RecentId(kind=kind, id=key, ts=ts) for kind, ids in (("report", state.seen_reports),
                                                                    ("spilled", state.spilled))
              for key in ids if (ts := ids.get(key)) is not None]
    tables["recent_ids"] = to_table(recent, _RecentId)
    return tables


def write_checkpoint(root: Path, tables: dict[str, pa.Table], stream_positions: dict[str, int],
                     version: int, cold: dict[str, Any] | None = None) -> Path:
    """Write the tables as Parquet plus a manifest into a new directory, then point CURRENT at it.

    `cold`: what `cold_manifest` says of the rows already on disk (projections.cold)."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{time.time_ns()}"
    temp = root / f".{name}.tmp"
    temp.mkdir()
    for table_name, table in tables.items():
        pq.write_table(table, temp / f"{table_name}.parquet")
    manifest = {"format": FORMAT_VERSION, "stream_positions": stream_positions, "version": version,
                "written_ns": time.time_ns(), "tables": sorted(tables), "cold": cold or {}}
    (temp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _fsync_tree(temp)
    final = root / name
    os.replace(temp, final)
    pointer = root / f".{_CURRENT}.tmp"
    pointer.write_text(name)
    os.replace(pointer, root / _CURRENT)
    _fsync_dir(root)
    # Keep the previous checkpoint too: a reader that resolved CURRENT just before this write can
    # still finish reading it.
    for old in sorted(root.glob("checkpoint-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(root: Path) -> ProjectionState | None:
    """The state from the CURRENT checkpoint, or None when there is none."""
    pointer = root / _CURRENT
    if not pointer.exists():
        return None
    directory = root / pointer.read_text().strip()
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("format") != FORMAT_VERSION:
        return None

    def rows(name: str, row_type: type[msgspec.Struct]) -> list:  # type: ignore[type-arg]
        return from_table(pq.read_table(directory / f"{name}.parquet"), row_type)

    state = ProjectionState()
    state.orders = {row.order_id: row for row in rows("orders", OrderRow)}
    state.children = {row.child_id: row for row in rows("children", ChildRow)}
    by_order: dict[str, list[ChildRow]] = {}
    for child in state.children.values():
        by_order.setdefault(child.order_id, []).append(child)
    state.models = {order_id: model_of(row, by_order.get(order_id, [])) for order_id, row in state.orders.items()}
    state.fills = rows("fills", FillRow)
    state.decisions = rows("decisions", DecisionRow)
    state.candles = {(r.venue, r.symbol, r.interval, r.open_time): r for r in rows("candles", CandleRow)}
    state.tops = {(r.venue, r.symbol): r for r in rows("book_tops", TopRow)}
    state.audit = rows("audit", AuditRow)
    state.pnl = rows("pnl", PnlPoint)
    positions = [_position_decoder.decode(text) for text in
                 pq.read_table(directory / "position_state.parquet").column("json").to_pylist()]
    state.positions = {(p.account, p.symbol): p for p in positions}
    state.marks = {m.symbol: (m.price, m.ts) for m in rows("marks", _Mark)}
    for row in rows("recent_ids", _RecentId):
        (state.seen_reports if row.kind == "report" else state.spilled).set(row.id, row.ts, row.ts)
    state.stream_positions = {str(k): int(v) for k, v in manifest["stream_positions"].items()}
    state.version = int(manifest["version"])
    # Every table is new to whoever reads this state: none may be taken from a cache as unchanged.
    state.changed_at = {name: state.version for name in ("orders", "children", "positions", "candles", "book_tops")}
    cold = manifest.get("cold", {})
    state.cold_parts = {str(name): [str(f) for f in files] for name, files in cold.get("parts", {}).items()}
    state.clock = int(cold.get("clock", 0))
    state.candle_floors = {(venue, symbol, interval): int(t) for venue, symbol, interval, t in cold.get("floors", [])}
    state.last_pnl_ts = {str(account): int(ts) for account, ts in cold.get("last_pnl_ts", {}).items()}
    return state


def named_parts(root: Path) -> list[dict[str, list[str]]]:
    """The cold parts each checkpoint kept under `root` names (projections.cold)."""
    named = []
    for directory in sorted(root.glob("checkpoint-*")):
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError):
            continue                    # half-written or removed meanwhile: it names nothing to keep
        named.append({str(k): [str(f) for f in v] for k, v in manifest.get("cold", {}).get("parts", {}).items()})
    return named


def cold_manifest(state: ProjectionState) -> dict[str, Any]:
    """What a checkpoint records beside its tables: the parts on disk, the clock, the candle floors and
    each account's last P&L point time (the P&L points themselves may be on disk)."""
    return {"parts": state.cold_parts, "clock": state.clock, "last_pnl_ts": state.last_pnl_ts,
            "floors": [[*series, t] for series, t in sorted(state.candle_floors.items())]}


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["cold_manifest", "load_checkpoint", "named_parts", "write_checkpoint"]
