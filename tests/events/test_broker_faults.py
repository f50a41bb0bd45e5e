"""Broker faults: a SIGKILLed nats-server restarted on the same store keeps every acknowledged publish."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from events import Broker, BrokerNotFound, Bus, PublishError, Trade, decode, embedded_broker, new_event_id
from events.broker import find_nats_server
from tests.conftest import REPO_ROOT, eventually


async def test_broker_sigkilled_during_batch_publish_keeps_every_acknowledged_event(broker: Broker) -> None:
    bus = await Bus.connect(broker.url, name="fault")
    await bus.ensure_streams()
    acknowledged: list[str] = []
    failures: list[BaseException] = []

    async def publish_until_failure() -> None:
        batch_no = 0
        while True:
            batch = [Trade(id=new_event_id(), ts=1 + batch_no, venue="SIM", symbol="BTCUSDT",
                           price=Decimal("1.5"), quantity=Decimal(i + 1)) for i in range(200)]
            try:
                acks = await bus.publish_batch(batch, timeout=1.0, attempts=1)
            except PublishError as exc:
                failures.append(exc)
                return
            assert len(acks) == len(batch)
            acknowledged.extend(event.id for event in batch)
            batch_no += 1

    task = asyncio.create_task(publish_until_failure())
    await eventually(lambda: len(acknowledged) >= 3_000, message="publishing under way")
    broker.kill()
    await asyncio.wait_for(task, 30)
    assert failures, "the publisher saw the broker die"

    broker.start()
    reader = await Bus.connect(broker.url, name="fault-reader")
    info = await reader.js.stream_info("SQ_MD")
    stored = set()
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await reader.js.get_msg("SQ_MD", seq)
        stored.add(decode(message.data or b"").id)
    await reader.close()
    await bus.close()
    missing = [event_id for event_id in acknowledged if event_id not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost after SIGKILL"


def test_broker_restarts_on_its_store_dir_with_streams_intact(tmp_path: Path) -> None:
    first = embedded_broker(tmp_path / "store")
    with first:
        async def create() -> None:
            bus = await Bus.connect(first.url)
            await bus.ensure_streams()
            await bus.ensure_streams()  # idempotent
            await bus.close()
        asyncio.run(create())
    again = embedded_broker(tmp_path / "store")
    with again:
        async def names() -> list[str]:
            bus = await Bus.connect(again.url)
            found = [info.config.name for info in await bus.js.streams_info()]
            await bus.close()
            return sorted(str(name) for name in found)
        assert asyncio.run(names()) == ["SQ_AUDIT", "SQ_MD", "SQ_TRADING"]


def test_missing_nats_server_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQ_NATS_SERVER", "/nonexistent/nats-server")
    with pytest.raises(BrokerNotFound, match="SQ_NATS_SERVER"):
        find_nats_server()


def test_sq_broker_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    from events import free_port

    port, monitor = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "broker", "--port", str(port), "--monitor-port", str(monitor),
         "--store-dir", str(tmp_path / "nats")],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"nats://127.0.0.1:{port}" in banner

        async def reachable() -> bool:
            bus = await Bus.connect(f"nats://127.0.0.1:{port}")
            await bus.ensure_streams()
            await bus.close()
            return True
        assert asyncio.run(reachable())
        process.terminate()
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.returncode == 0
        assert "broker stopped" in (process.stdout.read() or "")
    finally:
        if process.poll() is None:
            process.kill()
