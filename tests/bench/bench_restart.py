"""Restart benchmark: each processor back after a SIGKILL, and `as_of` positions, at growing recorded history.

For each history size (recorded market events in the WAL, plus fills), every processor runs as
`sq processor NAME` against a real broker, exactly as `sq up` runs it: a first start (a full
rebuild, which writes a snapshot), a SIGKILL, a tail of 20,000 more recorded events (about one
snapshot interval), then the timed restart, from spawn to `/readyz` answering 200 (caught up and
following the broker: the moment it decides a new intent). Beside it, in the same run, the same
restart with `--no-snapshots` (a full rebuild from the first record, as before snapshots).
`as_of`: the median of `Projections.as_of` at five random past times with the ladder built, beside
a fold of every record up to the same times (what `as_of` did before the ladder).

The gateway's counterpart of a snapshot is its projections' checkpoint (written every 30 s) and
the as-of ladder; its full rebuild starts without them. SQ_BENCH_RESTART_SIZES (default
100000,1000000,3000000) and SQ_BENCH_RESTART_PROCESSORS (default all five and the gateway) narrow
a run; a full run takes tens of minutes on two cores.
"""

from __future__ import annotations

import asyncio
import os
import random
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

from events import Bus, ExecutionReport, Trade, embedded_broker, new_event_id
from events.broker import free_port
from events.codec import encode
from events.subjects import subject_for
from processors.snapshots import Expected, SnapshotStore
from projections.service import STREAMS, Projections
from projections.state import ProjectionState, evolve
from store import Entry, WalWriter
from store.follow import history, last_recorded
from tests.bench.harness import BenchResult, result

REPO_ROOT = Path(__file__).resolve().parents[2]
EXECUTION = REPO_ROOT / "gateway" / "defaults" / "execution.toml"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
TAIL = 20_000
FILL_EVERY = 500
PROCESSORS = {
    "risk": [],
    "router": ["--config", str(EXECUTION), "--timer-ms", "0"],
    "venue-sim": ["--config", str(EXECUTION)],
    "portfolio": [],
    "aggregator": [],
    "gateway": [],
}


def _sizes() -> list[int]:
    return [int(n) for n in os.environ.get("SQ_BENCH_RESTART_SIZES", "100000,1000000,3000000").split(",") if n]


def _processors() -> list[str]:
    names = os.environ.get("SQ_BENCH_RESTART_PROCESSORS", ",".join(PROCESSORS)).split(",")
    return [name for name in names if name]


class History:
    """The WAL of a stack that recorded `count` market events (trades) with a fill every FILL_EVERY."""

    def __init__(self, wal_root: Path) -> None:
        self.wal_root = wal_root
        self.written = 0
        self.first_ts = time.time_ns() - 10**13          # about three hours ago: every event is in the past
        self.ts = self.first_ts

    def append(self, count: int) -> None:
        """Record `count` more trades (and their share of fills), 1 ms of event time apart."""
        with WalWriter.open(self.wal_root / "SQ_MD", contiguous=True) as md, \
                WalWriter.open(self.wal_root / "SQ_TRADING", contiguous=True) as trading:
            for start in range(0, count, 10_000):
                trades, fills = [], []
                for i in range(start, min(start + 10_000, count)):
                    n = self.written + i
                    self.ts += 1_000_000
                    trade = Trade(id=new_event_id(), ts=self.ts, venue="binance", symbol=SYMBOLS[n % 4],
                                  price=D(20_000 + n % 1000) / 10, quantity=D("0.01"))
                    trades.append(Entry(encode(trade), self.ts, subject_for(trade), "Trade"))
                    if n % FILL_EVERY == 0:
                        report = ExecutionReport(
                            id=new_event_id(), ts=self.ts, order_id=f"o{n}", child_id=f"c{n}",
                            account=f"ACC{n % 7}", venue="SIM_A", symbol=SYMBOLS[n % 4],
                            side="BUY" if n % 3 else "SELL", status="FILLED", last_quantity=D("0.01"),
                            last_price=D(20_000 + n % 1000) / 10, cum_quantity=D("0.01"), fee=D("0.001"))
                        fills.append(Entry(encode(report), self.ts, subject_for(report), "ExecutionReport"))
                md.append_batch(trades)
                if fills:
                    trading.append_batch(fills)
        self.written += count


def _spawn(name: str, broker_url: str, data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (data_dir / f"{name}.log").open("ab")
    if name == "gateway":
        command = ["gateway", "--http-port", str(port)]
    else:
        command = ["processor", name, *PROCESSORS[name], "--port", str(port), *extra]
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", *command, "--nats-url", broker_url,
                                "--data-dir", str(data_dir), "--log-level", "WARNING"],
                               cwd=REPO_ROOT, stdout=log, stderr=log)
    return process, port


def _ready_after(name: str, broker_url: str, data_dir: Path, *extra: str) -> tuple[float, subprocess.Popen[bytes]]:
    """Seconds from spawn until /readyz answers 200."""
    started = time.perf_counter()
    process, port = _spawn(name, broker_url, data_dir, *extra)
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {data_dir / (name + '.log')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - started, process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


async def _has_snapshot(broker_url: str, name: str) -> bool:
    bus = await Bus.connect(broker_url, name="bench")
    try:
        store = await SnapshotStore(bus, Expected(name, "0/1", 0, "")).open()
        return any([await store.get_raw(slot) is not None for slot in (0, 1)])
    finally:
        await bus.close()


def _restart(name: str, broker_url: str, data_dir: Path, history: History) -> tuple[float, float]:
    """(restart from the newest snapshot plus the tail, restart as a full rebuild), in seconds.

    The gateway's snapshot is its projections' checkpoint and as-of ladder under DATA_DIR/projections;
    its full rebuild starts with that directory moved away."""
    _, first = _ready_after(name, broker_url, data_dir)
    deadline = time.monotonic() + 600
    while not (_has_checkpoint(data_dir) if name == "gateway" else asyncio.run(_has_snapshot(broker_url, name))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} wrote no snapshot")
        time.sleep(0.2)
    _kill(first)
    history.append(TAIL)
    with_snapshot, second = _ready_after(name, broker_url, data_dir)
    _kill(second)
    if name == "gateway":
        kept = data_dir / "projections"
        kept.rename(data_dir / f"projections-kept-{time.time_ns()}")
        rebuild, third = _ready_after(name, broker_url, data_dir)
    else:
        rebuild, third = _ready_after(name, broker_url, data_dir, "--no-snapshots")
    _kill(third)
    return with_snapshot, rebuild


def _has_checkpoint(data_dir: Path) -> bool:
    return (data_dir / "projections" / "CURRENT").exists()


def _rebuilt_as_of(wal_root: Path, ts: int) -> ProjectionState:
    """Every record stored at or before ts, folded from the first (what as_of did before the ladder)."""
    state = ProjectionState()
    for envelope in history(wal_root, STREAMS, {}, until=last_recorded(wal_root, STREAMS), source="bench"):
        if envelope.stored_ts > ts:
            break
        evolve(state, envelope)
    return state


def _as_of(data_dir: Path, history_: History) -> tuple[float, float]:
    """(p50 seconds of as_of positions from the ladder, median seconds of a fold from the first record)."""
    projections = Projections(data_dir / "wal", data_dir / "projections")
    projections.ladder.catch_up()
    randomizer = random.Random(7)
    # The same moments for both (a fold from the first record costs more the later the moment).
    times = [randomizer.randint(history_.first_ts, history_.ts) for _ in range(5)]
    ladder = []
    for ts in times:
        started = time.perf_counter()
        projections.as_of(ts).position_rows()
        ladder.append(time.perf_counter() - started)
    full = []
    for ts in times:
        started = time.perf_counter()
        _rebuilt_as_of(data_dir / "wal", ts).position_rows()
        full.append(time.perf_counter() - started)
    return statistics.median(ladder), statistics.median(full)


def run() -> list[BenchResult]:
    """Restart seconds per processor and as_of p50 at each history size, each beside its full rebuild."""
    rows: list[BenchResult] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("SQ_BENCH_DIR")) as name:
        root = Path(name)
        for size in _sizes():
            data_dir = root / f"h{size}"
            data_dir.mkdir()
            with embedded_broker(data_dir / "nats") as broker:
                history_ = History(data_dir / "wal")
                history_.append(size)
                label = f"{size // 1000}k" if size < 1_000_000 else f"{size / 1_000_000:g}M"
                for processor in _processors():
                    snapshot_s, rebuild_s = _restart(processor, broker.url, data_dir, history_)
                    how = "without its checkpoints" if processor == "gateway" else "with --no-snapshots"
                    rows.append(result(f"restart_{processor}_{label}", snapshot_s, "s", better="lower",
                                       baseline_value=rebuild_s,
                                       baseline=f"the same restart {how} (full rebuild of "
                                                f"{history_.written:,} recorded market events)"))
                p50, full = _as_of(data_dir, history_)
                rows.append(result(f"as_of_positions_{label}", p50, "s (median)", better="lower", baseline_value=full,
                                   baseline=f"fold of every record up to the same time ({history_.written:,} "
                                            f"market events recorded)"))
    return rows
