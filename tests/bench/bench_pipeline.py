"""The live order path over a real broker: intents/s and intent→fill latency, beside raw nats-py request/reply.

Everything runs in this one process and one event loop, over an embedded nats-server: the
recorder (JetStream → WAL), the risk, router and venue-sim hosts (`ProcessorHost`, as `sq
processor ...` runs them, `apply_outputs=True`) and the projections (positions). On a 2-core
machine that is one core of Python for every processor plus the broker on the other; as separate
processes they would contend for the same two cores.

- `pipeline_intents`: MARKET intents published as fast as the bus takes them; the rate is intents
  over the time until the positions projection shows every fill (risk → router → venue → positions)
  and the trading stream has gone quiet with all of it in the WAL (parent completions included);
- `pipeline_p50` / `pipeline_p99`: ms from publishing an intent to receiving its FILLED report
  (a plain NATS subscription on `sq.exec.report.>`), intents paced at 1,000/s, or at the highest
  rate the pipeline sustained in the throughput phase if that is lower (the baseline text says which);
- baseline, in the same run and broker: raw nats-py request/reply round trips (one responder, one
  requester on separate connections).

`python -m tests.bench.bench_pipeline --profile` prints where the time goes per intent.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats

from events import Broker, Bus, embedded_broker, encode
from events.codec import decode
from events.ids import derived_id
from events.market import BookSnapshot, BookTop, Trade
from events.subjects import STREAM_MD, STREAM_TRADING
from events.trading import ExecutionReport, MarketAlgo, OrderIntent
from processors.host import ProcessorHost
from processors.risk import Limits, LimitsFile
from processors.router import VenueSpec
from projections.service import Projections
from store.follow import last_recorded
from store.recorder import record
from tests.bench.harness import BenchResult, result
from tests.pipeline._offline import order_path_cores

STREAMS = (STREAM_TRADING.name, STREAM_MD.name)
VENUES = [VenueSpec(name="SIM_A", market_venue="BENCH", taker_fee_bps=Decimal("10"), latency_ns=1_000_000)]
LIMITS = LimitsFile(defaults=Limits(max_order_quantity=Decimal("1000000"), max_order_notional=Decimal("100000000")))
THROUGHPUT_INTENTS = 3_000
PACED_RATE = 1_000
PACED_SECONDS = 4.0
RAW_ROUND_TRIPS = 5_000
DEEP = Decimal("10000000000")          # a book no bench run can exhaust (size x 1e8 must fit int64)


class Pipeline:
    """The running stack and a NATS subscription timing fill reports."""

    def __init__(self, bus: Bus, data_dir: Path) -> None:
        self.bus, self.data_dir = bus, data_dir
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.hosts: dict[str, ProcessorHost[Any]] = {}
        self.projections = Projections(data_dir / "wal", data_dir / "checkpoints")
        self.filled_at: dict[str, int] = {}

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(record(self.bus, self.data_dir / "wal", list(STREAMS), self.stop)))
        for name, core in order_path_cores(VENUES, LIMITS).items():
            host: ProcessorHost[Any] = ProcessorHost(name=name, bus=self.bus, wal_root=self.data_dir / "wal",
                                                      streams=STREAMS, state=core.state, decide=core.decide,
                                                      evolve=core.evolve, wanted=core.wanted, apply_outputs=True)
            self.hosts[name] = host
            self.tasks.append(asyncio.create_task(host.run(self.stop)))
        self.tasks.append(asyncio.create_task(self.projections.follow(self.bus, self.stop)))
        await self.bus.nc.subscribe("sq.exec.report.>", cb=self._on_report)
        await _until(lambda: all(h.caught_up.is_set() for h in self.hosts.values())
                     and self.projections.caught_up.is_set())
        now = time.time_ns()
        book = BookSnapshot(id=derived_id("bench", "snapshot"), ts=now, venue="BENCH", symbol="XYZ", last_update_id=1,
                            bids=[(Decimal("9.99"), DEEP)], asks=[(Decimal("10.01"), DEEP)])
        top = BookTop(id=derived_id("bench", "top"), ts=now, venue="BENCH", symbol="XYZ", last_update_id=1,
                      bid_price=Decimal("9.99"), bid_size=DEEP, ask_price=Decimal("10.01"), ask_size=DEEP)
        trade = Trade(id=derived_id("bench", "trade"), ts=now, venue="BENCH", symbol="XYZ", price=Decimal("10.00"),
                      quantity=Decimal(1))
        await self.bus.publish_batch([book, top, trade])
        await _until(lambda: all(h.applied >= 2 for h in self.hosts.values()), timeout=10)

    async def _on_report(self, msg: Any) -> None:
        received = time.perf_counter_ns()
        report = decode(msg.data)
        if isinstance(report, ExecutionReport) and report.status == "FILLED":
            self.filled_at.setdefault(report.order_id, received)

    def position(self) -> Decimal:
        row = self.projections.state.positions.get(("BENCH", "XYZ"))
        return row.quantity if row is not None else Decimal(0)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)


def _intent(tag: str, index: int) -> OrderIntent:
    return OrderIntent(id=derived_id(f"bench:{tag}", "intent", index), ts=time.time_ns(), account="BENCH",
                       client_order_id=f"{tag}-{index}", symbol="XYZ", side="BUY", quantity=Decimal(1),
                       algo=MarketAlgo())


async def _until(condition: Any, timeout: float = 60.0, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition did not hold in time")
        await asyncio.sleep(interval)


async def throughput(pipeline: Pipeline, count: int = THROUGHPUT_INTENTS, tag: str = "tput") -> float:
    """Intents/s from the first publish until the positions projection holds every fill."""
    intents = [_intent(tag, i) for i in range(count)]   # ids derive from tag and index: a reused tag is deduplicated
    target = pipeline.position() + count
    start = time.perf_counter()
    for i in range(0, count, 256):
        await pipeline.bus.publish_batch(intents[i:i + 256])
    await _until(lambda: pipeline.position() >= target, timeout=120)
    await drained(pipeline)
    return count / (time.perf_counter() - start)


async def drained(pipeline: Pipeline, quiet_s: float = 0.05) -> None:
    """Wait until the trading stream stops growing and the WAL holds all of it (completions come after fills)."""
    previous = -1
    while True:
        last = (await pipeline.bus.js.stream_info(STREAM_TRADING.name)).state.last_seq
        if last == previous and last_recorded(pipeline.data_dir / "wal", [STREAM_TRADING.name])[STREAM_TRADING.name] == last:
            return
        previous = last
        await asyncio.sleep(quiet_s)


async def paced_latency(pipeline: Pipeline, rate: float, seconds: float) -> list[float]:
    """Intent published → FILLED report received, in ms, for intents sent at `rate`/s for `seconds`."""
    count = int(rate * seconds)
    sent: dict[str, int] = {}
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        intent = _intent(f"lat{rate:g}", i)
        sent[intent.id] = time.perf_counter_ns()
        await pipeline.bus.publish(intent)
    await _until(lambda: all(order_id in pipeline.filled_at for order_id in sent), timeout=60)
    return sorted((pipeline.filled_at[order_id] - at) / 1e6 for order_id, at in sent.items())


async def raw_request_reply(url: str, count: int = RAW_ROUND_TRIPS) -> tuple[float, list[float]]:
    """Sequential nats-py request/reply round trips: rate and sorted latencies in ms."""
    responder, requester = await nats.connect(url), await nats.connect(url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await responder.subscribe("bench.echo", cb=echo)
    await responder.flush()
    payload = encode(_intent("raw", 0))                        # an intent-sized message
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter_ns()
        await requester.request("bench.echo", payload, timeout=5)
        latencies.append((time.perf_counter_ns() - sent) / 1e6)
    elapsed = time.perf_counter() - start
    await requester.close()
    await responder.close()
    return count / elapsed, sorted(latencies)


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@contextlib.asynccontextmanager
async def _running() -> AsyncIterator[tuple[Broker, Pipeline]]:
    with tempfile.TemporaryDirectory() as store, embedded_broker(Path(store) / "nats") as broker:
        bus = await Bus.connect(broker.url, name="bench-pipeline")
        await bus.ensure_streams()
        pipeline = Pipeline(bus, Path(store))
        await pipeline.start()
        try:
            yield broker, pipeline
        finally:
            await pipeline.close()
            await bus.close()


async def _measure() -> list[BenchResult]:
    async with _running() as (broker, pipeline):
        raw_rate, raw_latency = await raw_request_reply(broker.url)
        await throughput(pipeline, 300, "warm")                   # warm up
        sustained = await throughput(pipeline)
        # Pace at 1,000/s if the pipeline sustains it; otherwise at half of what it sustained, so
        # the latencies measure the path and not an ever-growing queue.
        rate = PACED_RATE if sustained >= PACED_RATE * 1.1 else max(50.0, round(sustained * 0.5, -1))
        latency = await paced_latency(pipeline, rate, PACED_SECONDS)
    paced = (f"pipeline paced at {rate:g} intents/s" + ("" if rate == PACED_RATE else
             f" (below the 1,000/s asked: it sustained {sustained:.0f}/s)"))
    return [
        result("pipeline_intents", sustained, "intents/s",
               baseline="raw nats-py request/reply round trips/s, same broker and run",
               baseline_value=raw_rate, better="higher"),
        result("pipeline_p50", statistics.median(latency), "ms",
               baseline=f"raw nats-py request/reply p50 ms; {paced}", baseline_value=statistics.median(raw_latency),
               better="lower"),
        result("pipeline_p99", _pct(latency, 0.99), "ms",
               baseline=f"raw nats-py request/reply p99 ms; {paced}", baseline_value=_pct(raw_latency, 0.99),
               better="lower"),
    ]


def run() -> list[BenchResult]:
    """Measure the live order path beside raw nats-py request/reply on one embedded broker."""
    return asyncio.run(_measure())


def profile(count: int = THROUGHPUT_INTENTS, top: int = 15) -> None:
    """Print the functions that cost the most per intent in the throughput phase (cProfile, one process)."""
    import cProfile
    import pstats

    async def measured() -> None:
        async with _running() as (_, pipeline):
            await throughput(pipeline, 300, "warm")
            profiler = cProfile.Profile()
            profiler.enable()
            rate = await throughput(pipeline, count)
            profiler.disable()
            print(f"{rate:.0f} intents/s under the profiler; per-intent costs (tottime / {count}):")
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime")
            for func, (_, calls, tottime, cumtime, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:  # type: ignore[attr-defined]
                print(f"  {tottime / count * 1e6:8.1f} µs self {cumtime / count * 1e6:9.1f} µs cum "
                      f"{calls / count:6.1f} calls  {func[0].rsplit('/', 2)[-1]}:{func[1]} {func[2]}")
            print("project functions by cumulative time per intent:")
            ours = [(k, v) for k, v in stats.stats.items()  # type: ignore[attr-defined]
                    if "/work/" in k[0] and "/.venv/" not in k[0] and "bench_pipeline" not in k[0]]
            for func, (_, calls, _, cumtime, _) in sorted(ours, key=lambda kv: -kv[1][3])[:top * 2]:
                print(f"  {cumtime / count * 1e6:9.1f} µs cum {calls / count:6.1f} calls  "
                      f"{func[0].rsplit('/', 2)[-2]}/{func[0].rsplit('/', 1)[-1]}:{func[1]} {func[2]}")

    asyncio.run(measured())


if __name__ == "__main__":
    if "--profile" in sys.argv:
        profile()
    else:
        for row in run():
            print(row.as_dict())
