"""Candles from Binance XRP/ETH aggTrades equal Binance's own klines; DuckDB SQL agrees; the incremental core agrees."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import msgspec
import numpy as np
import pytest

from events.control import TimerFired
from events.market import Bar, Trade
from processors.aggregator.book_events import from_scaled, to_scaled
from processors.aggregator.candles import (
    CandleState,
    LateTrade,
    candles_batch,
    decide,
    evolve,
    volume_profile,
)
from processors.connector.recordings import Record, read_bytes, read_records
from tests.conftest import real_data

MINUTE = 60_000_000_000


@pytest.fixture(scope="module")
def trades() -> list[Trade]:
    path = real_data("freqtrade_XRP_ETH-trades.json.gz")
    return [item.event for item in read_records(read_bytes(path), name=path.name) if isinstance(item, Record)]


def columns(trades: list[Trade]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([t.ts for t in trades], np.int64), np.array([to_scaled(t.price, 8) for t in trades], np.int64),
            np.array([to_scaled(t.quantity, 8) for t in trades], np.int64))


def klines(name: str) -> list[list]:
    return msgspec.json.decode(real_data(name).read_bytes())


def as_rows(bars) -> list[tuple]:
    return [(int(bars.open_time[i]) // 1_000_000, *(from_scaled(int(getattr(bars, f)[i]), 8)
             for f in ("open", "high", "low", "close", "volume"))) for i in range(len(bars))]


@pytest.mark.parametrize(("name", "minutes"), [("freqtrade_XRP_ETH-1m.json", 1), ("freqtrade_XRP_ETH-5m.json", 5)])
def test_batch_candles_equal_binance_klines_bar_for_bar(trades, name: str, minutes: int) -> None:
    ts, prices, sizes = columns(trades)
    ours = as_rows(candles_batch(ts, prices, sizes, minutes * MINUTE))
    theirs = [(row[0], *(Decimal(repr(x)) for x in row[1:])) for row in klines(name)]
    assert len(ours) == len(theirs)
    traded = set(int(t) // 1_000_000 for t in (ts // (minutes * MINUTE)) * (minutes * MINUTE))
    empty = [row for row in theirs if row[0] not in traded]
    assert empty and all(row[5] == 0 and row[1] == row[2] == row[3] == row[4] for row in empty)
    for mine, binance in zip(ours, theirs, strict=True):
        assert mine == binance, (mine, binance)   # traded and empty intervals alike


def test_duckdb_sql_over_the_raw_file_gives_the_same_candles(trades) -> None:
    path = real_data("freqtrade_XRP_ETH-trades.json.gz")
    sql = f"""
        WITH t AS (SELECT CAST(info->>'$.a' AS BIGINT) AS a, CAST(info->>'$.T' AS BIGINT) AS ts,
                          CAST(info->>'$.p' AS DECIMAL(18, 8)) AS p, CAST(info->>'$.q' AS DECIMAL(18, 8)) AS q
                   -- `info` holds both m and M, which DuckDB's struct detection refuses: read it as JSON.
                   FROM read_json('{path}', format = 'array', compression = 'gzip', columns = {{info: 'JSON'}}))
        SELECT (ts // 300000) * 300000 AS open_ms, arg_min(p, a), max(p), min(p), arg_max(p, a), sum(q), count(*)
        FROM t GROUP BY 1 ORDER BY 1"""
    rows = duckdb.sql(sql).fetchall()
    ts, prices, sizes = columns(trades)
    bars = candles_batch(ts, prices, sizes, 5 * MINUTE, fill_gaps=False)
    ours = [(*row, int(bars.count[i])) for i, row in enumerate(as_rows(bars))]
    assert len(rows) == len(ours) > 500
    assert [tuple(r) for r in rows] == ours


def test_incremental_core_equals_batch_path_including_empty_bars(trades) -> None:
    state = CandleState(venue="binance", symbol="XRPETH", interval="1m", interval_ns=MINUTE)
    bars: list[Bar] = []
    for trade in trades:
        bars += decide(state, trade)
        state = evolve(state, trade)
    end = TimerFired(id="t", ts=trades[-1].ts + MINUTE, timer="bars", due_ts=trades[-1].ts + MINUTE)
    bars += decide(state, end)
    state = evolve(state, end)
    ts, prices, sizes = columns(trades)
    batch = as_rows(candles_batch(ts, prices, sizes, MINUTE))
    assert [(b.open_time // 1_000_000, b.open, b.high, b.low, b.close, b.volume) for b in bars] == batch
    assert len({b.id for b in bars}) == len(bars)
    with pytest.raises(LateTrade):
        decide(state, trades[0])


def test_interval_outside_1s_to_1d_is_refused_with_the_limits() -> None:
    one = np.array([1], np.int64)
    for bad in (500_000_000, 2 * 86_400_000_000_000):
        with pytest.raises(ValueError, match="outside 1s..1d"):
            candles_batch(one, one, one, bad)


def test_volume_profile_point_of_control_and_value_area() -> None:
    prices = np.array([100, 101, 102, 102, 103, 104, 110], np.int64)
    sizes = np.array([1, 2, 5, 3, 4, 1, 4], np.int64)
    profile = volume_profile(prices, sizes, 1)
    assert profile.point_of_control == 102 and profile.volumes.sum() == 20
    # 70% of 20 = 14: 102 (8) + 103 (4) = 12, then 101 (2) = 14.
    assert (profile.value_area_low, profile.value_area_high, profile.value_area_volume) == (101, 103, 14)
    wide = volume_profile(prices, sizes, 5)
    assert list(wide.bucket_prices) == [100, 105, 110] and list(wide.volumes) == [16, 0, 4]
