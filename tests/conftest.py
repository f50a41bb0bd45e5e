"""Shared fixtures: a real nats-server on free loopback ports, a connected bus, and a bounded poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from events import Broker, Bus, embedded_broker

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One real JetStream broker for the whole session (tests isolate by stream/consumer names)."""
    broker = embedded_broker(tmp_path_factory.mktemp("nats-session"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh real JetStream broker for one test, with its own store dir (fault tests kill it)."""
    instance = embedded_broker(tmp_path / "nats")
    instance.start()
    yield instance
    instance.kill()


@pytest.fixture
async def bus(broker: Broker) -> AsyncIterator[Bus]:
    """A bus connected to this test's broker with the ShrivenQuant streams created."""
    connected = await Bus.connect(broker.url, name="test")
    await connected.ensure_streams()
    yield connected
    await connected.close()


async def eventually(condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 20.0,
                     interval: float = 0.02, message: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if asyncio.iscoroutine(outcome) or isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{message} did not hold within {timeout}s")
        await asyncio.sleep(interval)


def real_data(name: str) -> Path:
    """A file from ../shared/data/real, or skip the test saying why when that folder is absent."""
    path = SHARED_REAL_DATA / name
    if not path.exists():
        pytest.skip(f"{name} is not shipped with the project (licence); it is read from {SHARED_REAL_DATA}, "
                    "which is absent here")
    return path
