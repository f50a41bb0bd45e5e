"""The order path as a user meets it: `sq up` with every process running, a raw nats-py client as the strategy.

`sq up --nats-url` runs on an embedded broker of this run (the recorder, risk, router, venue-sim,
portfolio, aggregator, the demo market replay and the gateway, each its own process). A plain
nats-py client publishes MARKET intents on `sq.ord.intent.<account>` and times each until its
FILLED execution report arrives on a plain subscription to `sq.exec.report.>`:

- `orderpath_p50_20` / `orderpath_p99_20`: 20 intents/s over 10 accounts for 15 s;
- `orderpath_p50_200` / `orderpath_p99_200`: 200 intents/s over 20 accounts for 5 s;
- `orderpath_burst`: 2,000 intents over 100 accounts published at once, filled per second;
- `orderpath_p50_md2000` / `_p99_md2000` and `_md5000`: 20 intents/s while another client
  publishes 2,000 and then 5,000 trades/s on a symbol no order touches.

Baseline, same broker and run: a raw nats-py JetStream publish → push-consumer round trip at the
same pace (and, for the burst, raw JetStream messages/s through publish and consume).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StreamConfig

from events import Trade, embedded_broker, encode, new_event_id
from events.broker import free_port
from events.trading import MarketAlgo, OrderIntent
from tests.bench.harness import BenchResult, result

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "NKNUSDT"
FLOOD_SYMBOL = "FLOODUSDT"


class Strategy:
    """A raw nats-py client that sends intents and notes when each one's FILLED report arrives."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.sent: dict[str, int] = {}
        self.filled: dict[str, int] = {}
        self.rejected: set[str] = set()
        self.count = 0

    async def start(self) -> None:
        """Follow execution reports and risk decisions (core NATS: what a strategy would do)."""
        await self.nc.subscribe("sq.exec.report.>", cb=self._report)
        await self.nc.subscribe("sq.risk.decision.>", cb=self._decision)

    async def _report(self, msg: Any) -> None:
        body = json.loads(msg.data)
        if body.get("status") == "FILLED" and body["order_id"] in self.sent:
            self.filled.setdefault(body["order_id"], time.perf_counter_ns())

    async def _decision(self, msg: Any) -> None:
        body = json.loads(msg.data)
        if not body.get("accepted") and body["order_id"] in self.sent:
            self.rejected.add(body["order_id"])

    def intent(self, account: str) -> OrderIntent:
        """The next MARKET intent, alternately buying and selling one unit."""
        self.count += 1
        return OrderIntent(id=new_event_id(), ts=time.time_ns(), account=account,
                           client_order_id=f"bench-{self.count}", symbol=SYMBOL,
                           side="BUY" if self.count % 2 else "SELL", quantity=D(1), algo=MarketAlgo())

    async def send(self, intent: OrderIntent) -> None:
        """Publish as any NATS client would (with the dedupe header), timing from the call."""
        self.sent[intent.id] = time.perf_counter_ns()
        await self.js.publish(f"sq.ord.intent.{intent.account}", encode(intent), headers={"Nats-Msg-Id": intent.id})

    async def settled(self, ids: list[str], timeout: float = 120) -> None:
        """Wait until every intent filled or was refused."""
        deadline = time.monotonic() + timeout
        while any(i not in self.filled and i not in self.rejected for i in ids):
            if time.monotonic() > deadline:
                missing = sum(1 for i in ids if i not in self.filled and i not in self.rejected)
                raise RuntimeError(f"{missing} of {len(ids)} intents neither filled nor refused in {timeout}s")
            await asyncio.sleep(0.01)

    def latencies(self, ids: list[str]) -> list[float]:
        """Sorted ms from publish to FILLED for the intents that filled."""
        return sorted((self.filled[i] - self.sent[i]) / 1e6 for i in ids if i in self.filled)


async def paced(strategy: Strategy, rate: float, seconds: float, accounts: int = 10, prefix: str = "B") -> list[str]:
    """Send intents at `rate` per second for `seconds`, round-robin over accounts; return their ids."""
    ids = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        intent = strategy.intent(f"{prefix}{n % accounts:03d}")
        ids.append(intent.id)
        await strategy.send(intent)
    await strategy.settled(ids)
    return ids


async def flood(nc: Any, rate: int, stop: asyncio.Event) -> int:
    """Publish trades on FLOOD_SYMBOL at `rate` per second (JetStream, acks in flight) until stopped."""
    js = nc.jetstream(publish_async_max_pending=20_000)
    sent = 0
    start = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate)
        for _ in range(due - sent):
            trade = Trade(id=new_event_id(), ts=time.time_ns(), venue="binance", symbol=FLOOD_SYMBOL,
                          price=D("1.2345"), quantity=D("10"))
            await js.publish_async(f"sq.md.trade.binance.{FLOOD_SYMBOL}", encode(trade),
                                   headers={"Nats-Msg-Id": trade.id})
            sent += 1
        await asyncio.sleep(0.005)
    await js.publish_async_completed()
    return sent


async def raw_round_trips(nc: Any, rate: float, count: int) -> list[float]:
    """Raw JetStream publish → push-consumer delivery, paced: sorted ms."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH_RT", subjects=["bench.rt"]))
    arrived: dict[bytes, int] = {}

    async def got(msg: Any) -> None:
        arrived[msg.data] = time.perf_counter_ns()

    sub = await js.subscribe("bench.rt", cb=got, ordered_consumer=True)
    sent: dict[bytes, int] = {}
    payload = encode(Strategy(nc).intent("RAW"))
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = b"%d:" % n + payload
        sent[key] = time.perf_counter_ns()
        await js.publish("bench.rt", key)
    while len(arrived) < count:
        await asyncio.sleep(0.01)
    await sub.unsubscribe()
    await js.delete_stream("BENCH_RT")
    return sorted((arrived[k] - sent[k]) / 1e6 for k in sent)


async def raw_burst(nc: Any, count: int = 2_000) -> float:
    """Raw JetStream messages/s: publish `count` with acks in flight, until a consumer has them all."""
    js = nc.jetstream(publish_async_max_pending=20_000)
    await js.add_stream(StreamConfig(name="BENCH_BURST", subjects=["bench.burst"]))
    arrived = 0

    async def got(msg: Any) -> None:
        nonlocal arrived
        arrived += 1

    sub = await js.subscribe("bench.burst", cb=got, ordered_consumer=True)
    payload = encode(Strategy(nc).intent("RAW"))
    start = time.perf_counter()
    for _ in range(count):
        await js.publish_async("bench.burst", payload)
    while arrived < count:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    await js.delete_stream("BENCH_BURST")
    return count / elapsed


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sq up exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError("sq up was not ready in time")


async def _tradable(strategy: Strategy, timeout: float = 120) -> None:
    """Until a probe order fills: the demo market has a book on the simulated venues."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = strategy.intent("PROBE")
        await strategy.send(probe)
        try:
            await strategy.settled([probe.id], timeout=5)
        except RuntimeError:
            continue
        if probe.id in strategy.filled:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"no MARKET order on {SYMBOL} filled within {timeout}s")


async def _measure(url: str) -> list[BenchResult]:
    nc = await nats.connect(url)
    strategy = Strategy(nc)
    await strategy.start()
    await _tradable(strategy)
    rows: list[BenchResult] = []
    raw20 = await raw_round_trips(nc, 20, 200)

    def latency_rows(name: str, ids: list[str], raw: list[float], what: str) -> None:
        values = strategy.latencies(ids)
        lost = len(ids) - len(values)
        note = f"; {lost} of {len(ids)} refused by risk" if lost else ""
        rows.append(result(f"orderpath_p50_{name}", statistics.median(values), "ms", better="lower",
                           baseline_value=statistics.median(raw),
                           baseline=f"raw nats-py JetStream publish→consume p50 at the same pace; {what}{note}"))
        rows.append(result(f"orderpath_p99_{name}", _pct(values, 0.99), "ms", better="lower",
                           baseline_value=_pct(raw, 0.99),
                           baseline=f"raw nats-py JetStream publish→consume p99 at the same pace; {what}{note}"))

    latency_rows("20", await paced(strategy, 20, 15), raw20, "20 intents/s over 10 accounts, 15 s")
    raw200 = await raw_round_trips(nc, 200, 1000)
    # 200/s over 20 accounts: 10 a second each, half of the demo limits' 20 per account per second.
    latency_rows("200", await paced(strategy, 200, 5, accounts=20, prefix="H"), raw200,
                 "200 intents/s over 20 accounts, 5 s")

    # Accounts no earlier phase used, so each starts with its whole order-rate window.
    burst = [strategy.intent(f"C{n % 100:03d}") for n in range(2_000)]
    started = time.perf_counter()
    await asyncio.gather(*(strategy.send(intent) for intent in burst))
    ids = [intent.id for intent in burst]
    await strategy.settled(ids)
    filled = sum(1 for i in ids if i in strategy.filled)
    last = max(strategy.filled[i] for i in ids if i in strategy.filled)
    rate = filled / ((last / 1e9) - started)
    raw_rate = await raw_burst(nc)
    rows.append(result("orderpath_burst", rate, "intents/s filled", better="higher", baseline_value=raw_rate,
                       baseline=f"raw nats-py JetStream publish→consume msgs/s, 2,000 at once; {filled} of 2,000 "
                                f"intents over 100 accounts filled"))

    for md_rate in (2_000, 5_000):
        stop = asyncio.Event()
        flooding = asyncio.create_task(flood(nc, md_rate, stop))
        await asyncio.sleep(2)          # the flood reaches its pace before the orders start
        ids = await paced(strategy, 20, 15, prefix=f"M{md_rate // 1000}")
        stop.set()
        sent = await flooding
        latency_rows(f"md{md_rate}", ids, raw20, f"20 intents/s while {md_rate:,} trades/s flow on {FLOOD_SYMBOL} "
                                                 f"({sent:,} sent)")
    await nc.close()
    return rows


def run() -> list[BenchResult]:
    """Start `sq up` on this run's broker and measure the order path beside raw JetStream."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("SQ_BENCH_DIR")) as name, \
            embedded_broker(Path(name) / "nats") as broker:
        port = free_port()
        log = (Path(name) / "up.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "up", "--nats-url", broker.url,
                                    "--data-dir", str(Path(name) / "var"), "--http-port", str(port)],
                                   cwd=REPO_ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            _wait_ready(port, process)
            return asyncio.run(_measure(broker.url))
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
