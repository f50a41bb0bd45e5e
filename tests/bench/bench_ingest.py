"""Benchmark: recorded file -> connector -> JetStream events/s, beside raw nats-py publishing the same bytes."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import nats

from events import Bus, embedded_broker
from events.bus import MSG_ID_HEADER, outgoing
from processors.connector.recordings import Record, read_records
from processors.connector.replay import replay
from tests.bench.harness import BenchResult, result


def trades_csv(n: int) -> bytes:
    """n distinct trades as a generic trades CSV (what an analyst's export looks like)."""
    rows = ["ts,price,quantity,side,trade_id"]
    rows += [f"{1_700_000_000_000 + i * 7},{43000 + (i * 37) % 500}.{i % 100:02d},0.{(i * 13) % 1000:03d}1,"
             f"{'buy' if i % 3 else 'sell'},{i}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


async def measure(n: int, workdir: Path) -> tuple[float, float]:
    """(connector events/s including parsing, raw nats-py JetStream publishes/s of the same bytes)."""
    data = trades_csv(n)
    broker = embedded_broker(workdir / "nats")
    broker.start()
    try:
        bus = await Bus.connect(broker.url, name="bench-ingest")
        await bus.ensure_streams()
        # The baseline runs first (on a fresh stream), so any warm-up favours it, not us.
        items = [outgoing(r.event) for r in read_records(data, name="BTCUSDT-trades.csv", venue="bench")
                 if isinstance(r, Record)]
        nc = await nats.connect(broker.url)
        js = nc.jetstream(publish_async_max_pending=4000)
        start = time.perf_counter()
        for lo in range(0, len(items), 1024):
            futures = [await js.publish_async(item.subject, item.payload, headers={MSG_ID_HEADER: item.msg_id + "r"})
                       for item in items[lo:lo + 1024]]
            await asyncio.gather(*futures)
        raw = len(items) / (time.perf_counter() - start)
        await nc.close()
        start = time.perf_counter()
        stats = await replay(bus, read_records(data, name="BTCUSDT-trades.csv", venue="bench"), speed=0,
                             batch_size=1024)
        ours = stats.published / (time.perf_counter() - start)
        if stats.published != n:
            raise AssertionError(f"published {stats.published} of {n}")
        await bus.close()
        return ours, raw
    finally:
        broker.stop()


def run(n: int = 20_000) -> list[BenchResult]:
    """Ingest rate of the replay connector against raw nats-py publish_async on the same payloads."""
    with tempfile.TemporaryDirectory(prefix="sq-bench-ingest-") as tmp:
        ours, raw = asyncio.run(measure(n, Path(tmp)))
    return [result("ingest_events", ours, "events/s", baseline="raw nats-py JetStream publish_async, same bytes",
                   baseline_value=raw, better="higher")]


if __name__ == "__main__":
    for row in run():
        print(row.as_dict())
