"""A dashboard's poll over a long history: the newest fills over HTTP, beside the same question over the whole history.

- newest_fills_1m: ms per GET /v1/fills?limit=20 with 1,000,000 fills in Parquet parts on disk (14 h at
  20 fills/s), beside POST /v1/query asking the same newest 20 of the whole table; same gateway, same run.
- newest_fills_growth: the same GET with 1,000,000 fills on disk, beside it with 100,000 (ratio near 1:
  the answer's cost does not grow with history).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from aiohttp.test_utils import TestClient, TestServer

from events import Bus, embedded_broker
from gateway.app import create_app
from projections.rows import FillRow
from projections.service import Projections
from projections.tables import arrow_schema
from tests.bench.harness import BenchResult, result, unthrottled_gateway

T0 = 1_700_000_000_000_000_000
STEP_NS = 50_000_000                # 20 fills a second
PART_ROWS = 100_000
REPEATS = 30


def _fills(first: int, count: int) -> pa.Table:
    """`count` fills numbered from `first`, one every STEP_NS, as the projection stores them."""
    schema = arrow_schema(FillRow)
    n = np.arange(first, first + count)
    text = pa.array(n.astype(str))
    money = pa.array(n % 1000 + 1).cast(schema.field("price").type)
    columns = {"report_id": text, "order_id": text, "child_id": text,
               "account": pa.array(np.where(n % 2 == 0, "ACC0", "ACC1")), "venue": pa.array(["SIM"] * count),
               "symbol": pa.array(["BTCUSDT"] * count), "side": pa.array(np.where(n % 3 == 0, "SELL", "BUY")),
               "quantity": money, "price": money, "fee": money, "liquidity": pa.nulls(count, pa.string()),
               "ts": pa.array(T0 + n * STEP_NS)}
    return pa.Table.from_arrays([columns[field.name].cast(field.type) for field in schema], schema=schema)


def _history(projections: Projections, fills: int) -> None:
    """Put `fills` fills on disk in parts (merged as the gateway merges them) and move the clock to the last."""
    for first in range(0, fills, PART_ROWS):
        projections.cold.apply(projections.cold.write({"fills": _fills(first, PART_ROWS)}))
    projections.state.clock = T0 + (fills - 1) * STEP_NS


async def _median_ms(client: TestClient, token: str, method: str, path: str, body: object = None) -> float:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        async with client.request(method, path, headers=headers, json=body) as response:
            assert response.status == 200, await response.text()
            rows = (await response.json())
        timings.append(time.perf_counter() - started)
        assert len(rows.get("fills", rows.get("rows", []))) == 20, rows
    return statistics.median(timings) * 1000


async def _run() -> list[BenchResult]:
    timings: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "nats") as broker:
        root = Path(tmp)
        bus = await Bus.connect(broker.url, name="bench-reads")
        try:
            for fills in (100_000, 1_000_000):
                projections = Projections(root / f"wal{fills}", root / f"checkpoints{fills}")
                _history(projections, fills)
                gateway, token = unthrottled_gateway(root / f"gw{fills}", bus, projections)
                client = TestClient(TestServer(create_app(gateway)))
                await client.start_server()
                try:
                    newest = await _median_ms(client, token, "GET", "/v1/fills?limit=20")
                    whole = await _median_ms(client, token, "POST", "/v1/query",
                                             {"sql": "select * from fills order by ts desc", "max_rows": 20})
                finally:
                    await client.close()
                timings[fills] = {"newest": newest, "whole": whole}
        finally:
            await bus.close()
    return [
        result("newest_fills_1m", timings[1_000_000]["newest"], "ms/read",
               baseline="the same newest 20 asked of the whole history by SQL, 1M fills on disk",
               baseline_value=timings[1_000_000]["whole"], better="lower"),
        result("newest_fills_growth", timings[1_000_000]["newest"], "ms/read",
               baseline="the same read with 100k fills on disk", baseline_value=timings[100_000]["newest"],
               better="lower"),
    ]


def run() -> list[BenchResult]:
    """Measure newest_fills_1m and newest_fills_growth, each beside its same-run baseline."""
    return asyncio.run(_run())
