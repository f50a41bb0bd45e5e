"""Disaster-recovery drill: lose the broker's storage, every projection checkpoint and the WAL; restore from backup.

The drill, with the operator's commands (`sq store backup`, `sq store restore`, `sq replay
--republish`) run as real processes:

1. run the order path (recorder, risk, router, venue-sim, projections) on a real broker and trade
   until orders, fills and positions exist; quiesce it and record every projection table;
2. back up the WAL. `sq store backup` copies sealed segments only: the open tail segment is still
   being written, so it is left out by design (the first backup shows it under "unsealed"). Here
   the WAL is quiesced (recorder stopped), its tail sealed through the public WalWriter.seal(),
   and the backup run again: being incremental it now copies the newly sealed segments;
3. disaster: SIGKILL the broker, delete its JetStream storage, the WAL root and the checkpoints;
4. restore the backup into a fresh WAL root, start a fresh broker, republish the WAL into it,
   start the recorder and projections from scratch (no checkpoint), and check every table equals
   what it was before; then start the processors too and trade again, to show the restored site
   works (and that a retried old intent is still recognised as a duplicate).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from events import Broker, Bus, MarketAlgo, OrderIntent, TwapAlgo, embedded_broker, intent_id_for
from events.subjects import subscribed
from events.trading import Side
from processors.router.runner import ticker
from projections.service import SUBSCRIPTIONS, Projections
from projections.tables import ROW_TYPES
from store.follow import history, last_recorded
from store.recorder import record
from store.writer import WalWriter
from tests.conftest import REPO_ROOT, eventually
from tests.pipeline.conftest import STREAMS, Stack
from tests.pipeline.test_order_path import _market

# Everything the drill must bring back identically (the brief names positions, orders and fills).
TABLES = tuple(ROW_TYPES)


def sq(*args: str) -> dict[str, Any]:
    """Run one `sq` command as an operator would; return the JSON object it printed last."""
    result = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"sq {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    loaded: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return loaded


class Site:
    """One running site: a bus on a broker and the order path over a data dir, stoppable in two phases."""

    def __init__(self, bus: Bus, data_dir: Path) -> None:
        self.stack = Stack(bus=bus, data_dir=data_dir,
                           projections=Projections(data_dir / "wal", data_dir / "checkpoints"))
        self.store_stop = asyncio.Event()
        self.store_tasks: list[asyncio.Task[None]] = []

    async def start_store(self) -> None:
        """Recorder and projections (projections rebuild from the WAL and any checkpoint first)."""
        bus, data_dir = self.stack.bus, self.stack.data_dir
        self.store_tasks.append(asyncio.create_task(record(bus, data_dir / "wal", list(STREAMS), self.store_stop)))
        self.store_tasks.append(asyncio.create_task(self.stack.projections.follow(bus, self.store_stop)))
        await eventually(lambda: self.stack.projections.caught_up.is_set(), message="projections caught up")

    async def start_processors(self) -> None:
        """Risk, router (with its timer) and venue-sim; each rebuilds from the WAL."""
        for name in ("risk", "router", "venue-sim"):
            self.stack.start_host(name)
        self.stack.tasks.append(asyncio.create_task(ticker("router", 50_000_000)(self.stack.bus, self.stack.stop)))
        await eventually(lambda: all(h.caught_up.is_set() for h in self.stack.hosts.values()),
                         message="processors caught up")

    async def quiesce(self) -> None:
        """Stop the processors (nothing new is published), then wait until WAL and projections hold all."""
        self.stack.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.stack.tasks, return_exceptions=True), 30)
        self.stack.tasks.clear()
        ends = {stream: (await self.stack.bus.js.stream_info(stream)).state.last_seq for stream in STREAMS}
        wal = self.stack.data_dir / "wal"
        await eventually(lambda: last_recorded(wal, STREAMS) == ends, timeout=20, message="WAL holds every event")
        # The broker sends the projections only the subjects they read (the router's timers are not among
        # them), so they hold every event once they reached the last one they read.
        last_read = dict.fromkeys(STREAMS, 0)
        for envelope in history(wal, STREAMS, {}, until=ends, source="dr-drill", wanted=subscribed(SUBSCRIPTIONS)):
            last_read[envelope.stream] = envelope.seq

        def settled() -> bool:
            positions = self.stack.projections.state.stream_positions
            return all(positions.get(stream, 0) == seq for stream, seq in last_read.items())

        await eventually(settled, timeout=20, message="projections hold every event they read")

    async def stop_store(self) -> None:
        """Stop the recorder (its WAL closed) and the projections (they write a checkpoint)."""
        self.store_stop.set()
        await asyncio.wait_for(asyncio.gather(*self.store_tasks, return_exceptions=True), 30)


def snapshot(projections: Projections) -> dict[str, list[dict[str, Any]]]:
    """Every projection table as sorted rows, for an exact comparison."""
    tables = projections.tables(names=TABLES)
    return {name: sorted(projections.query(f"select * from {name}", tables, max_rows=10_000).table.to_pylist(),
                         key=repr) for name in TABLES}


def _intents(now: int) -> list[OrderIntent]:
    """Two accounts, both sides, MARKET and TWAP orders, and one order risk rejects."""
    intents = []
    for i in range(12):
        account = "ACC1" if i % 2 else "ACC2"
        side: Side = "BUY" if i % 3 else "SELL"
        algo = TwapAlgo(duration_s=0.3, slices=2) if i % 4 == 0 else MarketAlgo()
        intents.append(OrderIntent(id=intent_id_for(account, f"dr-{i}"), ts=now + i, account=account,
                                   client_order_id=f"dr-{i}", symbol="XYZ", side=side, quantity=D(2 + i % 5),
                                   limit_price=D("10.50") if side == "BUY" else D("9.50"), algo=algo))
    intents.append(OrderIntent(id=intent_id_for("ACC1", "dr-too-big"), ts=now + 99, account="ACC1",
                               client_order_id="dr-too-big", symbol="XYZ", side="BUY", quantity=D("2000000"),
                               limit_price=D("10.00")))
    return intents


def _settled(projections: Projections, intents: list[OrderIntent]) -> bool:
    orders = {order.order_id: order for order in projections.rows("orders")}
    return all(i.id in orders and orders[i.id].status in ("FILLED", "REJECTED") for i in intents)


async def test_restore_from_wal_backup_rebuilds_identical_positions_orders_and_fills(tmp_path: Path) -> None:
    broker = embedded_broker(tmp_path / "nats").start()
    bus = await Bus.connect(broker.url, name="dr-site")
    await bus.ensure_streams()
    site = Site(bus, tmp_path / "site")
    try:
        await site.start_store()
        await site.start_processors()

        # 1. Trade until orders, fills and positions exist, then quiesce and record the read models.
        now = time.time_ns()
        await _market(site.stack, now)
        intents = _intents(now)
        await bus.publish_batch(intents)
        await eventually(lambda: _settled(site.stack.projections, intents), timeout=30, message="orders settled")
        await site.quiesce()
        before = snapshot(site.stack.projections)
        assert before["fills"] and before["positions"] and len(before["orders"]) == len(intents)
        assert {row["status"] for row in before["orders"]} == {"FILLED", "REJECTED"}
        stream_ends = {s: (await bus.js.stream_info(s)).state.last_seq for s in STREAMS}
        await site.stop_store()
    finally:
        await bus.close()

    # 2. Back up. The live WAL is one open segment per stream: the backup leaves it out and says so.
    wal, backup_dir = tmp_path / "site" / "wal", tmp_path / "backup"
    first = sq("store", "backup", str(wal), str(backup_dir))
    assert first["copied"] == [] and sorted(first["unsealed"]) == sorted(
        f"{stream}/{path.name}" for stream in STREAMS for path in (wal / stream).glob("*.wal"))
    # Quiesced (the recorder holds no lock now): seal each tail, then the incremental backup takes it.
    for stream in STREAMS:
        with WalWriter.open(wal / stream) as writer:
            assert writer.seal() is not None
    second = sq("store", "backup", str(wal), str(backup_dir))
    assert second["unsealed"] == [] and len(second["copied"]) == len(STREAMS)
    assert sq("store", "verify", str(backup_dir))

    # 3. Disaster: the broker dies with its storage, and the site's WAL and checkpoints are gone.
    broker.kill()
    shutil.rmtree(broker.store_dir)
    shutil.rmtree(tmp_path / "site")

    # 4. Restore into a fresh WAL root, republish into a fresh broker, rebuild the read models.
    restored_root = tmp_path / "restored"
    restored = sq("store", "restore", str(backup_dir), str(restored_root / "wal"))
    assert restored["ok"] and set(restored["chain_hashes"]) == set(STREAMS)
    fresh: Broker = embedded_broker(tmp_path / "nats-fresh").start()
    try:
        result = subprocess.run([sys.executable, "-m", "gateway.cli", "replay", "--republish", "--wal-root",
                                 str(restored_root / "wal"), "--nats-url", fresh.url], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        bus = await Bus.connect(fresh.url, name="dr-restored")
        try:
            for stream, end in stream_ends.items():
                state = (await bus.js.stream_info(stream)).state
                assert (state.first_seq, state.last_seq, state.messages) == (1, end, end), stream
            site = Site(bus, restored_root)
            assert not (restored_root / "checkpoints").exists()
            await site.start_store()
            after = snapshot(site.stack.projections)
            for name in TABLES:
                assert after[name] == before[name], f"table {name} differs after the restore"
            assert site.stack.projections.state.stream_positions == stream_ends

            # The restored site trades on: processors rebuild from the restored WAL, a retried old intent
            # is still a duplicate to the broker, and a new order fills and moves the position.
            await site.start_processors()
            ack = await bus.publish(intents[1])
            assert ack.duplicate
            position = site.stack.projections.state.positions[("ACC1", "XYZ")].quantity
            later = time.time_ns()
            await _market(site.stack, later)
            new = OrderIntent(id=intent_id_for("ACC1", "dr-after"), ts=later, account="ACC1",
                              client_order_id="dr-after", symbol="XYZ", side="BUY", quantity=D(3),
                              limit_price=D("10.50"), algo=MarketAlgo())
            await bus.publish(new)
            await eventually(lambda: _settled(site.stack.projections, [new]), timeout=30,
                             message="order after the restore settled")
            assert site.stack.projections.state.orders[new.id].status == "FILLED"
            assert site.stack.projections.state.positions[("ACC1", "XYZ")].quantity == position + 3
            assert len(site.stack.projections.state.orders) == len(intents) + 1
            await site.quiesce()
            await site.stop_store()
        finally:
            await bus.close()
    finally:
        fresh.kill()

    print(f"\ndr drill: {len(before['orders'])} orders, {len(before['fills'])} fills, "
          f"{len(before['positions'])} positions; streams {stream_ends}; backup first pass left "
          f"{len(first['unsealed'])} unsealed tails, second copied {second['copied']}")
