"""Failover on a three-node JetStream cluster: SIGKILL the SQ_TRADING stream leader under a steady order flow.

The whole order path (recorder, risk, router, simulated venue, projections) runs in-process on a
bus connected to all three servers, with every stream at R3. MARKET intents are published at a
steady rate; mid-run the server leading SQ_TRADING is SIGKILLed. Afterwards:

* every intent whose publish JetStream acknowledged is in the stream (and in the WAL);
* no fill is duplicated: execution report ids are unique, and each order filled exactly its quantity;
* service resumed: the gap between the last fill stored before the kill and the first one stored
  after it is printed and bounded.

The killed node is then restarted and must rejoin with a current copy of the stream.

The processors run under a small supervisor that restarts one whose task died, as Kubernetes
or any process supervisor would: while SQ_TRADING has no leader a publish fails fast ("no
responders") and Bus's few quick retries run out in well under a second, so the router's timer
and sometimes the router or venue-sim exit. Restarted, they rebuild from the WAL and republish
what they had decided (principle 4); the restarts are printed with the gap.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest

from events import Bus, ExecutionReport, MarketAlgo, OrderIntent, PublishError, decode, intent_id_for
from events.bus import StreamSettings
from events.subjects import STREAM_TRADING
from events.trading import Side
from processors.router.runner import ticker
from projections.service import Projections
from store.follow import last_recorded
from store.recorder import record
from store.replay import ReplayFilter, replay
from tests.cluster.conftest import Cluster, stream_leader
from tests.conftest import eventually
from tests.pipeline.conftest import STREAMS, Stack
from tests.pipeline.test_order_path import _market

PUBLISH_INTERVAL_S = 0.05
BEFORE_KILL = 40          # intents acknowledged before the leader is killed
AFTER_RESUME = 40         # intents acknowledged after the first post-kill fill
MAX_GAP_S = 30.0
RESTART_DELAY_S = 0.5


@pytest.fixture
async def cluster_bus(cluster: Cluster) -> AsyncIterator[Bus]:
    """A bus on every server of the cluster, with the streams created at R3."""
    bus = await Bus.connect(cluster.url, name="cluster-test", settings=StreamSettings(replicas=3))
    await bus.ensure_streams()
    yield bus
    await bus.close()


@dataclass
class Supervisor:
    """Restarts a processor whose task died, as a process supervisor (Kubernetes, `sq up`'s caller) would.

    A processor exits when a publish fails after its retries, which happens while a stream has no
    leader; restarted, it rebuilds from the WAL and republishes what it had decided but not
    published (ARCHITECTURE.md, principle 4). Each restart is recorded, with its cause.
    """

    stack: Stack
    watched: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    restarts: list[tuple[str, str]] = field(default_factory=list)

    def start(self, name: str) -> None:
        if name == "ticker":
            task = asyncio.create_task(ticker("router", 50_000_000)(self.stack.bus, self.stack.stop))
            self.stack.tasks.append(task)
        else:
            self.stack.start_host(name)
            task = self.stack.tasks[-1]
        self.watched[name] = task

    async def run(self) -> None:
        while not self.stack.stop.is_set():
            for name, task in list(self.watched.items()):
                if task.done() and not task.cancelled() and task.exception() is not None \
                        and not self.stack.stop.is_set():
                    self.restarts.append((name, repr(task.exception())))
                    await asyncio.sleep(RESTART_DELAY_S)  # a supervisor's back-off
                    self.start(name)
            await asyncio.sleep(0.1)


@pytest.fixture
async def cluster_stack(cluster_bus: Bus, tmp_path: Path) -> AsyncIterator[tuple[Stack, Supervisor]]:
    """The in-process order path (as tests/pipeline's `stack`) over the cluster, under a supervisor."""
    running = Stack(bus=cluster_bus, data_dir=tmp_path,
                    projections=Projections(tmp_path / "wal", tmp_path / "checkpoints"))
    running.tasks.append(asyncio.create_task(record(cluster_bus, tmp_path / "wal", list(STREAMS), running.stop)))
    supervisor = Supervisor(running)
    for name in ("risk", "router", "venue-sim", "ticker"):
        supervisor.start(name)
    running.tasks.append(asyncio.create_task(running.projections.follow(cluster_bus, running.stop)))
    unsupervised = (running.tasks[0], running.tasks[-1])  # the recorder and the projections
    # Supervised from the start: just after the streams are created at R3 a leader may still be settling,
    # and a processor that exits on it then is restarted, as it would be at any other time.
    supervising = asyncio.create_task(supervisor.run())

    def caught_up() -> bool:
        for task in unsupervised:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"a task died while the stack started: {task.exception()!r}")
        return all(h.caught_up.is_set() for h in running.hosts.values()) and running.projections.caught_up.is_set()

    await eventually(caught_up, message="stack caught up")
    yield running, supervisor
    running.stop.set()
    await supervising
    await asyncio.wait_for(asyncio.gather(*running.tasks, return_exceptions=True), 30)


@dataclass
class Flow:
    """A steady publisher of MARKET intents; what was acknowledged and what was not."""

    bus: Bus
    now: int
    acked: dict[str, OrderIntent] = field(default_factory=dict)
    unacked: dict[str, OrderIntent] = field(default_factory=dict)
    count: int = 0

    def intent(self, index: int) -> OrderIntent:
        side: Side = "BUY" if index % 2 else "SELL"
        return OrderIntent(id=intent_id_for("ACC1", f"fo-{index}"), ts=self.now + index, account="ACC1",
                           client_order_id=f"fo-{index}", symbol="XYZ", side=side, quantity=D(1 + index % 3),
                           limit_price=D("10.50") if side == "BUY" else D("9.50"), algo=MarketAlgo())

    async def run(self, stop: asyncio.Event) -> None:
        """Publish one intent per interval; each is sent once (a failed publish is recorded, not retried)."""
        while not stop.is_set():
            intent = self.intent(self.count)
            self.count += 1
            try:
                await self.bus.publish(intent, timeout=2.0)
            except PublishError:
                self.unacked[intent.id] = intent
            else:
                self.acked[intent.id] = intent
            await asyncio.sleep(PUBLISH_INTERVAL_S)


def _fill_times(wal_root: Path) -> list[int]:
    """Broker storage times of every execution report that filled something, from the WAL."""
    times = []
    for rec in replay(wal_root, streams=[STREAM_TRADING.name], where=ReplayFilter(types=frozenset({"ExecutionReport"}))):
        event = rec.decode()
        if isinstance(event, ExecutionReport) and event.last_quantity > 0:
            times.append(rec.ts)
    return sorted(times)


async def _stream_events(bus: Bus, stream: str) -> list[object]:
    """Every message of the stream, decoded, read by sequence from the stream's leader.

    Each read is retried for a while: just after a failover the new leader (and a new meta leader,
    when the killed node held that too) may answer with a timeout for a moment.
    """
    async def read(call):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 20
        while True:
            try:
                return await call()
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    info = await read(lambda: bus.js.stream_info(stream))
    events: list[object] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await read(lambda seq=seq: bus.js.get_msg(stream, seq))
        events.append(decode(message.data or b""))
    return events


async def _diagnose(stack: Stack, flow: Flow) -> str:
    """Where each part of the stack stands (for a failure message)."""
    lines = [f"acked {len(flow.acked)} unacked {len(flow.unacked)}",
             f"wal {last_recorded(stack.data_dir / 'wal', STREAMS)}",
             f"projections {stack.projections.state.stream_positions} lag {stack.projections.lag()}"]
    for stream in STREAMS:
        try:
            info = await stack.bus.js.stream_info(stream)
            lines.append(f"stream {stream} last {info.state.last_seq} leader {info.cluster and info.cluster.leader}")
        except Exception as exc:  # noqa: BLE001
            lines.append(f"stream {stream}: {exc!r}")
    feeds: dict[str, Any] = {name: host._feed for name, host in stack.hosts.items()}
    feeds["projections"] = stack.projections._feed
    for name, feed in feeds.items():
        parts = [f"{name}: lag {feed.lag() if feed else None}"]
        for sub in (feed._subscriptions if feed else []):
            jsi = sub._sub._jsi
            parts.append(f"[{sub._stream} consumer {sub._consumer} sseq {jsi._sseq} active {jsi._active} "
                         f"hb-task {jsi._hbtask and jsi._hbtask.done()}]")
        lines.append(" ".join(parts))
    for task in stack.tasks:
        if task.done():
            lines.append(f"task done: {task!r} {task.exception() if not task.cancelled() else 'cancelled'!r}")
    return "\n".join(lines)


async def test_sigkill_of_the_trading_stream_leader_loses_no_acked_intent_and_duplicates_no_fill(
        cluster: Cluster, cluster_stack: tuple[Stack, Supervisor]) -> None:
    stack, supervisor = cluster_stack
    bus = stack.bus
    assert (await bus.js.stream_info(STREAM_TRADING.name)).config.num_replicas == 3
    now = time.time_ns()
    await _market(stack, now)

    flow = Flow(bus, now)
    stop_flow = asyncio.Event()
    publisher = asyncio.create_task(flow.run(stop_flow))
    try:
        await eventually(lambda: len(flow.acked) >= BEFORE_KILL, timeout=30, message="intents flowing")
        await eventually(lambda: sum(o.status == "FILLED" for o in stack.projections.state.orders.values()) >= 10,
                         timeout=30, message="fills before the kill")
        leader = await stream_leader(bus, STREAM_TRADING.name)
        acked_before_kill = len(flow.acked)
        kill_ns = time.time_ns()
        cluster.kill(leader)
        new_leader = await stream_leader(bus, STREAM_TRADING.name, timeout=30)
        assert new_leader != leader

        def filled_after_kill() -> bool:
            return any(ts > kill_ns for ts in _fill_times(stack.data_dir / "wal"))

        try:
            await eventually(lambda: asyncio.to_thread(filled_after_kill), timeout=MAX_GAP_S + 15, interval=0.2,
                             message="a fill after the leader was killed")
        except pytest.fail.Exception:
            print("\n" + await _diagnose(stack, flow))
            raise
        resumed_at = len(flow.acked)
        await eventually(lambda: len(flow.acked) >= resumed_at + AFTER_RESUME, timeout=30,
                         message="intents acknowledged after the failover")
    finally:
        stop_flow.set()
        await asyncio.wait_for(publisher, 30)

    # Let every acknowledged intent run its course.
    def settled() -> bool:
        orders = stack.projections.state.orders
        return all(i in orders and orders[i].status in ("FILLED", "REJECTED") for i in flow.acked)

    await eventually(settled, timeout=40, interval=0.2, message="every acknowledged intent settled")

    # 1. No acknowledged publish lost: every acked intent is in the stream (read back from the new leader).
    events = await _stream_events(bus, STREAM_TRADING.name)
    in_stream = {e.id for e in events if isinstance(e, OrderIntent)}
    if in_stream - set(flow.acked):
        # A publish whose ack was lost may still have been stored: it must run its course too.
        await eventually(lambda: all(i in stack.projections.state.orders
                                     and stack.projections.state.orders[i].status in ("FILLED", "REJECTED")
                                     for i in in_stream), timeout=40, interval=0.2, message="stored intents settled")
        events = await _stream_events(bus, STREAM_TRADING.name)
    lost = sorted(set(flow.acked) - in_stream)
    assert not lost, f"{len(lost)} acknowledged intents lost: {lost[:5]}"
    # ... and the recorder's WAL holds the stream exactly (no gap, no duplicate sequence).
    # (The router's timer keeps publishing, so the WAL is compared up to a stream end read first.)
    stream_end = (await bus.js.stream_info(STREAM_TRADING.name)).state.last_seq
    await eventually(lambda: last_recorded(stack.data_dir / "wal", [STREAM_TRADING.name])[STREAM_TRADING.name]
                     >= stream_end, timeout=20, message="recorder caught up with the stream")
    wal = [r.seq for r in replay(stack.data_dir / "wal", streams=[STREAM_TRADING.name])]
    assert wal == list(range(1, len(wal) + 1)) and len(wal) >= stream_end, "the WAL has a gap or a duplicate"

    # 2. No fill duplicated.
    reports = [e for e in events if isinstance(e, ExecutionReport)]
    assert len({r.id for r in reports}) == len(reports), "an execution report was stored twice"
    filled: dict[str, D] = {}
    for report in reports:
        filled[report.order_id] = filled.get(report.order_id, D(0)) + report.last_quantity
    state = stack.projections.state
    assert len(state.fills) == len({f.report_id for f in state.fills})
    for intent_id in in_stream:
        order = state.orders[intent_id]
        assert order.status == "FILLED", (intent_id, order.status)
        assert filled[intent_id] == order.quantity == order.filled_quantity, (intent_id, filled[intent_id])
    position = state.positions[("ACC1", "XYZ")]
    stored_intents = [e for e in events if isinstance(e, OrderIntent)]
    assert position.quantity == sum((i.quantity if i.side == "BUY" else -i.quantity for i in stored_intents), D(0))

    # 3. Service resumed, within a bound.
    times = _fill_times(stack.data_dir / "wal")
    before = [ts for ts in times if ts <= kill_ns]
    after = [ts for ts in times if ts > kill_ns]
    gap_s = (after[0] - before[-1]) / 1e9
    unacked_stored = sorted(set(flow.unacked) & in_stream)
    print(f"\nfailover: killed leader {leader} of {STREAM_TRADING.name}, new leader {new_leader}; fill gap {gap_s:.2f}s (last fill before the kill -> first after); "
          f"{len(flow.acked)} intents acked ({acked_before_kill} before the kill), {len(flow.unacked)} publishes "
          f"unacknowledged ({len(unacked_stored)} of them stored anyway, and filled); {len(reports)} reports; "
          f"processor restarts: {dict(Counter(name for name, _ in supervisor.restarts))}")
    assert gap_s < MAX_GAP_S

    # The killed node rejoins and catches up: every replica current, none lagging.
    await asyncio.to_thread(cluster.restart, leader)

    async def replicas_current() -> bool:
        try:
            cluster_info = (await bus.js.stream_info(STREAM_TRADING.name)).cluster
        except Exception:  # noqa: BLE001 - a moment of 503 while the node rejoins
            return False
        peers = cluster_info.replicas if cluster_info and cluster_info.replicas else []
        return len(peers) == 2 and all(p.current and not p.offline and not p.lag for p in peers)

    await eventually(replicas_current, timeout=30, interval=0.25, message="restarted node current again")
