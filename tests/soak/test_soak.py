"""Soak: the order path as real processes under a steady mixed load, sampled every minute, then reconciled.

`make soak` (or `SQ_SOAK_SECONDS=90 pytest -m slow tests/soak`) runs it; it is not part of `make test`.
Recorder, risk, router, venue-sim, the aggregator, portfolio and reporting run as `sq processor` processes and
the gateway (projections and HTTP) as `sq gateway`, over a real nats-server (the `processes` fixture). In this
process a market-data publisher ticks 20 times a second, each tick a trade on each of three symbols and every
fifth tick a two-level book per symbol (72 market events/s; the aggregator derives tops and bars from them),
and an order publisher sends 20 intents a second: MARKET, marketable IOC LIMIT, 2-slice TWAP, and 5% over the
quantity limit (rejected). Rates come from `SQ_SOAK_MD_RATE` (ticks/s) and `SQ_SOAK_ORDER_RATE` (intents/s):
issue 15's 100 intents/s and about 500 market events/s are `SQ_SOAK_ORDER_RATE=100 SQ_SOAK_MD_RATE=139`.

An operator's dashboard stays open throughout: every 5 s the reads gateway/static/app.js makes
(positions, orders, fills, P&L, candles, recent risk decisions) and a WebSocket taking every
execution report and control event, as the page does.

Every sample period (60 s, shorter for runs under 10 minutes) it records throughput, intent→fill
and intent→decision latency percentiles, recorder lag and the RSS of every process. At the end:
memory growth of every process of `sq up` (the processors and the gateway) from the end of the
warm-up (until the redelivery windows are full: about 7 minutes, at most a quarter of the run) to the
end must stay under 10%, each level the median of three samples; the report also gives the gateway's
growth per order. nats-server and this driver are sampled and reported, not asserted: the
broker's JetStream caches grow with the streams, and the driver keeps every latency it measured. The WAL is reconciled against what
was published and against projections rebuilt from it, and the live gateway's projections must
answer the same aggregate queries exactly as that from-scratch rebuild does. The JSON report goes to `SQ_SOAK_REPORT` (default
`bench-results/soak.json`) even when an assertion fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events import Broker, Bus, free_port
from gateway.users import UserStore
from processors.recent import REDELIVERY_WINDOW_NS
from tests.conftest import REPO_ROOT, eventually
from tests.pipeline.conftest import PASSWORD, ProcessStack, gateway_login
from tests.soak._load import SYMBOLS, Market, Orders, cpu_seconds, paced, rss_kb
from tests.soak._reconcile import FINGERPRINTS, reconcile

SECONDS = float(os.environ.get("SQ_SOAK_SECONDS", "1800"))
MD_RATE = float(os.environ.get("SQ_SOAK_MD_RATE", "20"))
ORDER_RATE = float(os.environ.get("SQ_SOAK_ORDER_RATE", "20"))
SAMPLE_SECONDS = min(60.0, max(5.0, SECONDS / 10))
# Memory is measured from when the bounded state is full: the redelivery windows (processors.recent)
# keep ids for their window plus one slice of event time, so processes grow for about 375 s of load and
# then hold steady; a minute more, within a quarter of the run.
WARMUP_SECONDS = min(REDELIVERY_WINDOW_NS * 1.25 / 1e9 + 60, SECONDS / 4)
# RSS is taken as the median of three consecutive samples: a snapshot being pickled or a checkpoint being
# written raises one sample for a few seconds and says nothing of the memory a process keeps.
LEVEL_SAMPLES = 3
MAX_GROWTH = 0.10
# Every process of `sq up` but the broker: its memory must stay flat.
PROCESSES = ("recorder", "risk", "router", "venue-sim", "aggregator", "portfolio", "reporting", "gateway")
USER = "soak-ops"


def _report_path() -> Path:
    path = Path(os.environ.get("SQ_SOAK_REPORT", "bench-results/soak.json"))
    return path if path.is_absolute() else REPO_ROOT / path


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"n": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 3)}


class Sampler:
    """Per-period throughput, latency, recorder lag and RSS."""

    def __init__(self, bus: Bus, processes: ProcessStack, broker: Broker, market: Market, orders: Orders) -> None:
        self.bus, self.processes, self.market, self.orders = bus, processes, market, orders
        self.pids = {name: p.pid for name, p in processes.processes.items()}
        assert broker.process is not None
        self.pids["nats-server"] = broker.process.pid
        self.pids["driver (this test)"] = os.getpid()
        self.samples: list[dict[str, Any]] = []
        self.watermarks: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._cpu: dict[str, float] = {}
        self._t0 = time.perf_counter()

    async def watch_watermarks(self) -> None:
        async def on(msg: Any) -> None:
            body = json.loads(msg.data)
            self.watermarks[body["stream"]] = body["seq"]

        await self.bus.nc.subscribe("sq.wal.watermark.*", cb=on)

    async def recorded(self) -> bool:
        """Whether the recorder's durable watermark has reached the end of both streams."""
        for stream in ("SQ_MD", "SQ_TRADING"):
            info = await self.bus.js.stream_info(stream)
            if self.watermarks.get(stream, 0) < info.state.last_seq:
                return False
        return True

    def alive(self) -> None:
        for name, process in self.processes.processes.items():
            if process.poll() is not None:
                log = (self.processes.data_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"{name} exited with {process.returncode} during the soak:\n{log}")

    async def sample(self, phase: str) -> dict[str, Any]:
        self.alive()
        now = time.perf_counter()
        streams = {}
        for stream in ("SQ_MD", "SQ_TRADING"):
            info = await self.bus.js.stream_info(stream)
            streams[stream] = {"last_seq": info.state.last_seq,
                               "recorder_lag": info.state.last_seq - self.watermarks.get(stream, 0)}
        counters = {"intents": len(self.orders.sent), "decisions": self.orders.decisions_seen,
                    "fills": self.orders.fills_seen, "md_events": len(self.market.published),
                    **{f"{s}_events": v["last_seq"] for s, v in streams.items()}}
        since = self._last.get("t", self._t0)
        elapsed = now - since
        rates = {f"{k}_per_s": round((v - self._last.get(k, 0)) / elapsed, 2) for k, v in counters.items()}
        fills = [lat for t, lat in self.orders.fill_latencies if since < t <= now]
        decisions = [lat for t, lat in self.orders.decision_latencies if since < t <= now]
        cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        cpu_pct = {name: round((used - self._cpu.get(name, 0.0)) * 100 / elapsed, 1) for name, used in cpu.items()}
        self._cpu = cpu
        sample = {"t_s": round(now - self._t0, 1), "phase": phase, "throughput": rates, "totals": counters,
                  "intent_to_fill": _percentiles(fills), "intent_to_decision": _percentiles(decisions),
                  "recorder_lag": {s: v["recorder_lag"] for s, v in streams.items()},
                  "rss_kb": {name: rss_kb(pid) for name, pid in self.pids.items()}, "cpu_pct": cpu_pct}
        self._last = {"t": now, **counters}
        self.samples.append(sample)
        return sample


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 900)
async def test_soak_steady_mixed_load_keeps_memory_flat_and_loses_or_duplicates_nothing(
        broker: Broker, bus: Bus, processes: ProcessStack, tmp_path: Path) -> None:
    processes.commands["aggregator"] = ["processor", "aggregator", "--intervals", "1s,1m", "--port", "0"]
    processes.commands["portfolio"] = ["processor", "portfolio", "--port", "0"]
    processes.commands["reporting"] = ["processor", "reporting", "--port", "0"]
    port = free_port()
    processes.commands["gateway"] = ["gateway", "--http-port", str(port)]
    users = UserStore(tmp_path / "secrets")
    users.add(USER, PASSWORD, ["risk"], [])                 # risk: reads every account
    for name in PROCESSES:
        processes.start(name)
    gateway = LiveGateway(f"http://127.0.0.1:{port}", users)
    dashboard = Dashboard(f"http://127.0.0.1:{port}", users)
    market, stop = Market(bus), asyncio.Event()
    orders = Orders(bus, market)
    await orders.subscribe()
    sampler = Sampler(bus, processes, broker, market, orders)
    await sampler.watch_watermarks()
    report: dict[str, Any] = {"name": "soak", "duration_s": SECONDS, "warmup_s": WARMUP_SECONDS,
                              "sample_s": SAMPLE_SECONDS, "md_ticks_per_s": MD_RATE, "intents_per_s": ORDER_RATE,
                              "processes": list(sampler.pids), "machine": {"python": platform.python_version(),
                                                                           "cpus": os.cpu_count()}}
    load: list[asyncio.Task[None]] = []
    try:
        load.append(asyncio.create_task(paced(MD_RATE, stop, market.tick)))
        # A first order through every process before the clock starts: they are all up and following.
        canary = await orders.send(-1, kind="MARKET")
        await eventually(lambda: canary in orders.first_fill, timeout=90, interval=0.1,
                         message="the first order filled")
        await sampler.sample("start: the first order, through processes still starting")
        load.append(asyncio.create_task(dashboard.run(stop)))
        orders.fill_latencies.clear()  # the first order waited for the processes to start
        orders.decision_latencies.clear()
        load.append(asyncio.create_task(paced(ORDER_RATE, stop, orders.send)))
        started = time.monotonic()
        baseline: dict[str, int] | None = None
        baseline_totals: dict[str, int] | None = None
        marks = sorted({*(k * SAMPLE_SECONDS for k in range(1, int(SECONDS // SAMPLE_SECONDS) + 1)),
                        WARMUP_SECONDS, SECONDS})
        for mark in marks:
            await asyncio.sleep(max(0.0, started + mark - time.monotonic()))
            for task in load:
                if task.done():
                    task.result()  # a publisher failed: surface why
            sample = await sampler.sample("warm-up" if mark <= WARMUP_SECONDS else "measured")
            if baseline is None and mark >= WARMUP_SECONDS:
                baseline, baseline_totals = sample["rss_kb"], sample["totals"]
                sample["baseline"] = True
        end_sample = sampler.samples[-1]
        stop.set()
        await asyncio.gather(*load)
        report["dashboard"] = {"refresh_s": Dashboard.REFRESH_S, "reads": dashboard.reads,
                               "ws_frames": dashboard.frames}
        report["settle_s"] = await _settle(orders, sampler)
        report["live_projections"] = await gateway.fingerprints(expected_orders=len(orders.sent))
        first_measured = next((i for i, sample in enumerate(sampler.samples) if sample.get("baseline")),
                              len(sampler.samples) - LEVEL_SAMPLES)
        report["memory"] = _memory(sampler.samples, first_measured)
        measured = end_sample["totals"]["intents"] - (baseline_totals or end_sample["totals"])["intents"]
        gateway_growth = report["memory"]["gateway"]["end_kb"] - report["memory"]["gateway"]["baseline_kb"]
        report["memory"]["gateway"]["kb_per_order_after_warmup"] = round(gateway_growth / max(1, measured), 2)
        # Stop every producer (the router's timer publishes even when idle), then let the recorder finish.
        for name in PROCESSES[1:]:
            processes.processes[name].terminate()
        for name in PROCESSES[1:]:
            processes.processes[name].wait(timeout=30)
        await eventually(sampler.recorded, timeout=60, interval=0.2, message="the WAL holds both streams")
        report["stream_last_seq"] = {s: (await bus.js.stream_info(s)).state.last_seq for s in ("SQ_MD", "SQ_TRADING")}
    finally:
        stop.set()
        for task in load:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*load)
        report["samples"] = sampler.samples
        report["intent_to_fill"] = _percentiles([lat for _, lat in orders.fill_latencies])
        report["intent_to_decision"] = _percentiles([lat for _, lat in orders.decision_latencies])
        processes.stop_all()
        try:
            if "stream_last_seq" in report:
                report["reconciliation"] = await asyncio.to_thread(reconcile, tmp_path, orders, market,
                                                                    report["stream_last_seq"],
                                                                    report.get("live_projections"))
        finally:
            _write(report)

    growth = {name: row["growth_pct"] for name, row in report["memory"].items() if name in PROCESSES}
    assert all(g < MAX_GROWTH * 100 for g in growth.values()), f"memory growth over 10%: {growth}"
    problems = report["reconciliation"]["problems"]
    assert not problems, problems


class Dashboard:
    """An operator's open dashboard: the reads gateway/static/app.js makes every 5 s, and its WebSocket."""

    REFRESH_S = 5.0
    READS = (("GET", "/v1/positions", None), ("GET", "/v1/orders?limit=50", None), ("GET", "/v1/fills?limit=20", None),
             ("GET", "/v1/pnl?limit=2000", None),
             ("GET", f"/v1/candles?symbol={SYMBOLS[0]}&interval=1m&limit=120", None),
             ("GET", "/v1/decisions?limit=10", None))
    WS_PATTERNS = ["sq.exec.report.>", "sq.ctl.killswitch.>", "sq.ctl.state.>", "sq.ctl.breaker.>"]

    def __init__(self, base: str, users: UserStore) -> None:
        self.base, self.users = base, users
        self.reads = 0
        self.frames = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every REFRESH_S and take live frames until `stop`; any answer but 200 fails the soak."""
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: self._ready(session), timeout=120, interval=0.5, message="the gateway ready")
            headers = await gateway_login(session, self.base, self.users, USER)
            async with session.ws_connect(f"{self.base}/v1/ws", headers=headers, heartbeat=20) as ws:
                await ws.send_json({"subscribe": self.WS_PATTERNS})
                frames = asyncio.create_task(self._take_frames(ws))
                try:
                    while not stop.is_set():
                        for method, path, body in self.READS:
                            async with session.request(method, f"{self.base}{path}", json=body,
                                                       headers=headers) as response:
                                assert response.status == 200, f"{method} {path}: {await response.text()}"
                                await response.read()
                            self.reads += 1
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.REFRESH_S)
                    assert not frames.done(), f"the dashboard's WebSocket closed: {frames.result()}"
                finally:
                    frames.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await frames

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.base}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False  # not listening yet

    async def _take_frames(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.frames += 1
        return f"close code {ws.close_code}"


class LiveGateway:
    """The gateway process's projections, asked over HTTP what the reconciliation asks the rebuild."""

    def __init__(self, base: str, users: UserStore) -> None:
        self.base, self.users = base, users

    async def fingerprints(self, *, expected_orders: int) -> dict[str, list[dict[str, Any]]]:
        """Every FINGERPRINTS answer, once the orders projection holds every order and two readings agree."""
        async with aiohttp.ClientSession() as session:
            headers = await gateway_login(session, self.base, self.users, USER)

            async def ask() -> dict[str, list[dict[str, Any]]]:
                answers = {}
                for name, sql in FINGERPRINTS.items():
                    async with session.post(f"{self.base}/v1/query", json={"sql": sql}, headers=headers) as response:
                        assert response.status == 200, await response.text()
                        answers[name] = (await response.json())["rows"]
                return answers

            last: dict[str, Any] = {}

            async def caught_up() -> bool:
                nonlocal last
                previous, last = last, await ask()
                held = sum(row["n"] for row in last["orders"])
                return held >= expected_orders and last == previous

            await eventually(caught_up, timeout=120, interval=1.0, message="the gateway's projections caught up")
            return last


async def _settle(orders: Orders, sampler: Sampler) -> float:
    """Wait until every intent is decided, every accepted one completed, and the WAL holds both streams."""
    start = time.monotonic()
    await eventually(orders.settled, timeout=120, interval=0.2,
                     message="every intent decided and every accepted one completed")

    await eventually(sampler.recorded, timeout=120, interval=0.5, message="the WAL holds both streams")
    return round(time.monotonic() - start, 1)


def _memory(samples: list[dict[str, Any]], first_measured: int) -> dict[str, dict[str, float]]:
    """Per process: RSS at the start, at the end of the warm-up and at the end, each a level (the median of
    LEVEL_SAMPLES samples), the growth between the last two, and the single samples beside them."""
    def level(at: list[dict[str, Any]], name: str) -> int:
        return sorted(sample["rss_kb"][name] for sample in at)[len(at) // 2]

    baseline = samples[max(0, first_measured):first_measured + LEVEL_SAMPLES]
    end = samples[-LEVEL_SAMPLES:]
    out = {}
    for name in samples[-1]["rss_kb"]:
        base, last = level(baseline, name), level(end, name)
        out[name] = {"start_kb": samples[0]["rss_kb"][name], "baseline_kb": base, "end_kb": last,
                     "growth_pct": round((last - base) * 100 / base, 2),
                     "baseline_sample_kb": baseline[0]["rss_kb"][name], "end_sample_kb": end[-1]["rss_kb"][name]}
    return out


def _write(report: dict[str, Any]) -> None:
    path = _report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"soak report: {path}")
