"""Fills per symbol, VWAP and P&L from a Parquet export of the WAL, with DuckDB (and pandas when installed).

    sq store export var/wal exports/
    python examples/replay_analysis.py exports/            # tables
    python examples/replay_analysis.py exports/ --json     # one JSON object, money as decimal strings

The export (`store/export.py`) holds one row per recorded event, partitioned by `date` and
`type`, with the event's JSON in `payload`; only sealed WAL segments are exported. Quantities,
notionals, fees, cash and P&L stay exact decimals (DECIMAL(38, 12)); VWAP is a division, so
DuckDB computes it in float64 and it is rounded to 8 places. P&L is marked to the last trade
of the symbol in the export (any venue), else to its last fill: cash from fills, less fees,
plus position times mark. Fees are taken to be in the quote currency.
"""

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

try:
    import pandas  # noqa: F401 - only to know whether frames can be pandas
    HAVE_PANDAS = True
except ImportError:
    HAVE_PANDAS = False

MONEY = "DECIMAL(38, 12)"

FILLS = f"""
CREATE VIEW fills AS
SELECT ts, id AS report_id, correlation_id AS order_id, j->>'account' AS account, j->>'symbol' AS symbol,
       j->>'venue' AS venue, j->>'side' AS side,
       CAST(j->>'last_quantity' AS {MONEY}) AS quantity, CAST(j->>'last_price' AS {MONEY}) AS price,
       CAST(coalesce(j->>'fee', '0') AS {MONEY}) AS fee,
       CASE j->>'side' WHEN 'BUY' THEN 1 ELSE -1 END AS sign
FROM (SELECT ts, id, correlation_id, CAST(decode(payload) AS JSON) AS j FROM events WHERE type = 'ExecutionReport')
WHERE CAST(j->>'last_quantity' AS {MONEY}) > 0
"""

TRADES = f"""
CREATE VIEW trades AS
SELECT ts, j->>'symbol' AS symbol, CAST(j->>'price' AS {MONEY}) AS price
FROM (SELECT ts, CAST(decode(payload) AS JSON) AS j FROM events WHERE type = 'Trade')
"""

PER_SYMBOL = """
SELECT symbol, count(*) AS fills, count(DISTINCT order_id) AS orders,
       sum(quantity) FILTER (WHERE side = 'BUY') AS bought, sum(quantity) FILTER (WHERE side = 'SELL') AS sold,
       sum(quantity * price) AS notional, round(sum(quantity * price) / sum(quantity), 8) AS vwap,
       sum(fee) AS fees
FROM fills GROUP BY symbol ORDER BY symbol
"""

PNL = f"""
WITH book AS (
  SELECT account, symbol, sum(sign * quantity) AS position,
         CAST(sum(-sign * quantity * price) - sum(fee) AS {MONEY}) AS cash,
         arg_max(price, ts) AS last_fill
  FROM fills GROUP BY account, symbol),
marks AS (SELECT symbol, arg_max(price, ts) AS last_trade FROM trades GROUP BY symbol)
SELECT b.account, b.symbol, b.position, b.cash, coalesce(m.last_trade, b.last_fill) AS mark,
       CAST(b.cash + b.position * coalesce(m.last_trade, b.last_fill) AS {MONEY}) AS pnl
FROM book b LEFT JOIN marks m USING (symbol) ORDER BY b.account, b.symbol
"""


def load(export_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with `events` over the export and `fills` and `trades` views on it."""
    if not any(export_dir.glob("**/*.parquet")):
        sys.exit(f"no Parquet files under {export_dir}: run `sq store export WAL_DIR {export_dir}` first "
                 "(only sealed WAL segments are exported)")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{export_dir}/**/*.parquet', "
                "hive_partitioning = true, union_by_name = true)")
    con.execute(FILLS)
    con.execute(TRADES)
    return con


def as_frame(relation: duckdb.DuckDBPyRelation):  # noqa: ANN201 - pandas.DataFrame or pyarrow.Table
    """Arrow keeps DECIMAL exact; pandas gets Python Decimals from it (DuckDB's .df() would make floats)."""
    table = relation.to_arrow_table()
    return table.to_pandas() if HAVE_PANDAS else table


def as_json(relation: duckdb.DuckDBPyRelation) -> list[dict[str, object]]:
    columns = relation.columns
    return [{c: (str(v) if isinstance(v, Decimal) else v) for c, v in zip(columns, row, strict=True)}
            for row in relation.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="the OUT_DIR of `sq store export`")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    con = load(args.export_dir)
    counts = con.sql("SELECT type, count(*) AS events FROM events GROUP BY type ORDER BY type")
    queries = {"events": counts, "per_symbol": con.sql(PER_SYMBOL), "pnl": con.sql(PNL)}
    if args.json:
        print(json.dumps({name: as_json(rel) for name, rel in queries.items()}, indent=1))
        return
    for name, relation in queries.items():
        print(f"\n== {name} ({'pandas' if HAVE_PANDAS else 'pyarrow'})")
        frame = as_frame(relation)
        print(frame.to_string(index=False) if HAVE_PANDAS else frame)


if __name__ == "__main__":
    main()
