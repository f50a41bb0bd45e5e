"""Arrow tables from projection rows: schemas derived from the row Structs, exact decimals, incremental tails."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Any

import msgspec
import pyarrow as pa

from projections.rows import (
    AuditRow,
    CandleRow,
    ChildRow,
    DecisionRow,
    FillRow,
    OrderRow,
    PnlPoint,
    PositionRow,
    TopRow,
)
from projections.state import APPEND_ONLY, ProjectionState

# Money in tables: 38 digits with 12 decimals (the most an event may carry); derived values
# such as average prices are rounded half-even to 12 places for display.
DECIMAL = pa.decimal128(38, 12)
QUANTUM = Decimal("1e-12")

ROW_TYPES: dict[str, type[msgspec.Struct]] = {
    "orders": OrderRow, "children": ChildRow, "fills": FillRow, "decisions": DecisionRow, "candles": CandleRow,
    "book_tops": TopRow, "audit": AuditRow, "positions": PositionRow, "pnl": PnlPoint,
}


def _arrow_type(info: msgspec.inspect.Type) -> pa.DataType:
    match info:
        case msgspec.inspect.UnionType(types=types):
            concrete = [t for t in types if not isinstance(t, msgspec.inspect.NoneType)]
            return _arrow_type(concrete[0])
        case msgspec.inspect.StrType():
            return pa.string()
        case msgspec.inspect.BoolType():
            return pa.bool_()
        case msgspec.inspect.IntType():
            return pa.int64()
        case msgspec.inspect.FloatType():
            return pa.float64()
        case msgspec.inspect.DecimalType():
            return DECIMAL
    raise TypeError(f"no Arrow type for {info!r}")


@cache
def arrow_schema(row_type: type[msgspec.Struct]) -> pa.Schema:
    """The Arrow schema of a row Struct (its field order, nullable where the Struct allows None)."""
    info = msgspec.inspect.type_info(row_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return pa.schema([pa.field(f.name, _arrow_type(f.type)) for f in info.fields])


def _quantize(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def to_table(rows: Sequence[msgspec.Struct], row_type: type[msgspec.Struct]) -> pa.Table:
    """Rows as an Arrow table with the row type's schema."""
    schema = arrow_schema(row_type)
    columns = []
    for field in schema:
        values = [getattr(row, field.name) for row in rows]
        if field.type == DECIMAL:
            values = [_quantize(v) for v in values]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def from_table(table: pa.Table, row_type: type[msgspec.Struct]) -> list[Any]:
    """Rows back from a table (checkpoint loading)."""
    return [msgspec.convert(row, row_type) for row in table.to_pylist()]


class TableCache:
    """Materialises each projection as an Arrow table, converting only what changed since the last call."""

    def __init__(self) -> None:
        self._chunks: dict[str, list[pa.Table]] = {name: [] for name in APPEND_ONLY}
        self._converted: dict[str, int] = dict.fromkeys(APPEND_ONLY, 0)
        self._snapshots: dict[str, tuple[int, pa.Table]] = {}
        self._spills = 0

    def table(self, state: ProjectionState, name: str) -> pa.Table:
        """The named table's rows in memory as of the state's current version."""
        row_type = ROW_TYPES[name]
        if state.spills != self._spills:
            # Rows went to disk (projections.cold): the append-only lists started again.
            self._chunks = {table: [] for table in APPEND_ONLY}
            self._converted = dict.fromkeys(APPEND_ONLY, 0)
            self._spills = state.spills
        if name in APPEND_ONLY:
            rows = held_rows(state, name)
            done = self._converted[name]
            if done < len(rows):
                self._chunks[name].append(to_table(rows[done:], row_type))
                self._converted[name] = len(rows)
            chunks = self._chunks[name]
            return pa.concat_tables(chunks) if chunks else to_table([], row_type)
        changed = state.changed_at.get(name, 0)
        cached = self._snapshots.get(name)
        if cached is not None and cached[0] == changed:
            return cached[1]
        table = to_table(held_rows(state, name), row_type)
        self._snapshots[name] = (changed, table)
        return table

    def built_at(self, state: ProjectionState, name: str) -> int | None:
        """The state version the named table last changed at, or None for append-only tables.

        The same version means the same table, so an answer computed from it is still true;
        keeping the version rather than the table keeps old tables from being held alive."""
        if name in APPEND_ONLY:
            return None
        self.table(state, name)
        return self._snapshots[name][0]

    def all(self, state: ProjectionState) -> dict[str, pa.Table]:
        """Every table."""
        return {name: self.table(state, name) for name in ROW_TYPES}


def held_rows(state: ProjectionState, name: str) -> list[Any]:
    """The named table's rows in memory, in table order."""
    if name in APPEND_ONLY:
        rows: list[Any] = getattr(state, name)
        return rows
    match name:
        case "orders":
            return list(state.orders.values())
        case "children":
            return list(state.children.values())
        case "candles":
            return [state.candles[key] for key in sorted(state.candles)]
        case "book_tops":
            return [state.tops[key] for key in sorted(state.tops)]
        case "positions":
            return state.position_rows()
    raise KeyError(name)
