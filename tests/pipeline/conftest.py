"""The order path running in-process over a real broker: recorder, risk, router, simulated venue, projections."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from events import BookSnapshot, BookTop, Broker, Bus, Trade, derived_id
from events.subjects import STREAM_MD, STREAM_TRADING
from gateway.users import UserStore
from processors.aggregator.tape import summarise
from processors.host import ProcessorHost
from processors.risk import Limits, LimitsFile, RiskState
from processors.risk import decide as risk_decide
from processors.risk import evolve as risk_evolve
from processors.risk.runner import _wanted as risk_wanted
from processors.router import RouterConfig, RouterState, VenueSpec
from processors.router import decide as router_decide
from processors.router import evolve as router_evolve
from processors.router.runner import ticker
from processors.router.runner import wanted as router_wanted
from processors.venue_sim.config import SimConfig
from processors.venue_sim.core import decide as sim_decide
from processors.venue_sim.core import evolve as sim_evolve
from processors.venue_sim.runner import wanted as sim_wanted
from processors.venue_sim.state import SimState
from projections.service import Projections
from store.recorder import record
from tests.conftest import REPO_ROOT, eventually

STREAMS = (STREAM_TRADING.name, STREAM_MD.name)
VENUES = [VenueSpec(name="SIM_A", market_venue="BINANCE", taker_fee_bps=Decimal("10"), latency_ns=1_000_000),
          VenueSpec(name="SIM_B", market_venue="BINANCE", taker_fee_bps=Decimal("25"), latency_ns=5_000_000)]
LIMITS = LimitsFile(defaults=Limits(max_order_quantity=Decimal("1000000"), max_order_notional=Decimal("1000000")))


@dataclass
class Stack:
    """Handles on the running processors."""

    bus: Bus
    data_dir: Path
    projections: Projections
    hosts: dict[str, ProcessorHost[Any]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_host(self, name: str) -> None:
        """(Re)start one processor host from scratch: it rebuilds from the WAL, then follows live."""
        factories = {
            "risk": lambda: (RiskState(LIMITS), risk_decide, risk_evolve, risk_wanted),
            "router": lambda: (RouterState(RouterConfig(venues=VENUES, slice_time_in_force="GTC")), router_decide, router_evolve, router_wanted),
            "venue-sim": lambda: (SimState(SimConfig(venues=VENUES)), sim_decide, sim_evolve, sim_wanted),
        }
        state, decide, evolve, wanted = factories[name]()
        host: ProcessorHost[Any] = ProcessorHost(name=name, bus=self.bus, wal_root=self.data_dir / "wal",
                                                  streams=STREAMS, state=state, decide=decide, evolve=evolve,
                                                  wanted=wanted, apply_outputs=True)
        self.hosts[name] = host
        self.tasks.append(asyncio.create_task(host.run(self.stop)))


@pytest.fixture
async def stack(bus: Bus, tmp_path: Path) -> AsyncIterator[Stack]:
    """Recorder, risk, router (with its timer), venue-sim and projections over the test's broker."""
    running = Stack(bus=bus, data_dir=tmp_path, projections=Projections(tmp_path / "wal", tmp_path / "checkpoints"))
    running.tasks.append(asyncio.create_task(record(bus, tmp_path / "wal", list(STREAMS), running.stop)))
    for name in ("risk", "router", "venue-sim"):
        running.start_host(name)
    running.tasks.append(asyncio.create_task(ticker("router", 50_000_000)(bus, running.stop)))
    running.tasks.append(asyncio.create_task(running.projections.follow(bus, running.stop)))
    await eventually(lambda: all(h.caught_up.is_set() for h in running.hosts.values())
                     and running.projections.caught_up.is_set(), message="stack caught up")
    yield running
    running.stop.set()
    await asyncio.wait_for(asyncio.gather(*running.tasks, return_exceptions=True), 20)


EXECUTION_TOML = """
[[venues]]
name = "SIM_A"
market_venue = "BINANCE"
taker_fee_bps = 10
latency_ns = 1_000_000
"""


@dataclass
class ProcessStack:
    """Processors as real processes (`sq processor NAME`, `sq gateway`), to be SIGKILLed and restarted."""

    broker_url: str
    data_dir: Path
    commands: dict[str, list[str]]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start (or restart) one process, logging to DATA_DIR/NAME.log."""
        log = (self.data_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *self.commands[name], "--nats-url", self.broker_url,
             "--data-dir", str(self.data_dir)], cwd=REPO_ROOT, stdout=log, stderr=log)

    def kill(self, name: str) -> None:
        """SIGKILL one process and reap it."""
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self) -> None:
        """SIGTERM everything and wait."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


PASSWORD = "correct horse battery staple"


async def gateway_login(session: aiohttp.ClientSession, base: str, store: UserStore, user: str) -> dict[str, str]:
    """Log `user` (password PASSWORD) in to a gateway process with a fresh TOTP code: bearer headers."""
    while True:
        code = store.totp_now(user)
        async with session.post(f"{base}/v1/auth/login",
                                json={"username": user, "password": PASSWORD, "totp": code}) as response:
            if response.status == 200:
                return {"Authorization": f"Bearer {(await response.json())['access_token']}"}
            # A code already used in this 30 s window (401), or the bus too busy to record the session (503,
            # Retry-After): try again, as a client would.
            assert response.status in (401, 503), await response.text()
            await asyncio.sleep(1)


@pytest.fixture
def processes(broker: Broker, tmp_path: Path) -> Iterator[ProcessStack]:
    """Recorder, risk, router and venue-sim as processes over the test's broker (started by the test)."""
    (tmp_path / "execution.toml").write_text(EXECUTION_TOML)
    limits = tmp_path / "limits.json"
    limits.write_bytes(msgspec.json.encode(LimitsFile(defaults=Limits(max_order_quantity=Decimal(100)))))
    stack = ProcessStack(broker.url, tmp_path, {
        "recorder": ["processor", "recorder", "--port", "0"],
        "risk": ["processor", "risk", "--limits", str(limits), "--port", "0"],
        "router": ["processor", "router", "--config", str(tmp_path / "execution.toml"), "--timer-ms", "50",
                   "--port", "0"],
        "venue-sim": ["processor", "venue-sim", "--config", str(tmp_path / "execution.toml"), "--port", "0"],
    })
    yield stack
    stack.stop_all()


async def publish_market(bus: Bus, now: int, hosts: dict[str, ProcessorHost[Any]] | None = None) -> None:
    """Quote XYZ on BINANCE at 9.99 / 10.01 (500 each side) with a trade at 10.00 (and its summary), and wait until every
    given in-process host applied it: market data and orders travel on different streams, so a
    trader's first order should not race the market it prices against."""
    book = BookSnapshot(id=derived_id("BINANCE:XYZ", "snapshot", now), ts=now, venue="BINANCE", symbol="XYZ",
                        last_update_id=100, bids=[(Decimal("9.99"), Decimal("500"))],
                        asks=[(Decimal("10.01"), Decimal("500"))])
    top = BookTop(id=derived_id("BINANCE:XYZ", "top", now), ts=now, venue="BINANCE", symbol="XYZ", last_update_id=100,
                  bid_price=Decimal("9.99"), bid_size=Decimal("500"), ask_price=Decimal("10.01"),
                  ask_size=Decimal("500"))
    trade = Trade(id=derived_id("BINANCE:XYZ", "trade", now), ts=now, venue="BINANCE", symbol="XYZ",
                  price=Decimal("10.00"), quantity=Decimal("3"))
    hosts = hosts or {}
    before = {name: host.applied for name, host in hosts.items()}
    # The summary the aggregator would publish for the trade (risk, the router and portfolio read those).
    await bus.publish_batch([book, top, trade, summarise(trade)])
    await eventually(lambda: all(host.applied >= before[name] + 2 for name, host in hosts.items()),
                     message="market data applied by every processor")
