"""The in-process order path (tests/pipeline) with the gateway in front, and a headless Chromium to drive it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from events import free_port
from gateway.server import RunningGateway, start_gateway
from tests.conftest import eventually
from tests.dashboard.cdp import Browser, Page, find_chromium
from tests.pipeline.conftest import Stack, stack  # noqa: F401 - the fixture, reused

PASSWORD = "correct horse battery staple"


@dataclass
class Served:
    """The gateway on a real port in front of the running stack."""

    base_url: str
    running: RunningGateway
    stack: Stack


@pytest.fixture
async def served(stack: Stack) -> AsyncIterator[Served]:  # noqa: F811 - `stack` is the imported fixture
    """start_gateway over the stack's WAL and broker, durable acks on (the stack runs a recorder).

    Users: olga (trader and risk on ACC1) and vic (viewer on ACC1).
    """
    port = free_port()
    running = await start_gateway(stack.bus, data_dir=stack.data_dir, host="127.0.0.1", port=port)
    running.gateway.users.add("olga", PASSWORD, ["trader", "risk"], ["ACC1"])
    running.gateway.users.add("vic", PASSWORD, ["viewer"], ["ACC1"])
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async def ready() -> bool:
            async with session.get(f"{base}/readyz") as response:
                return response.status == 200

        await eventually(ready, timeout=20, message="gateway ready")
    yield Served(base, running, stack)
    await running.close()


@pytest.fixture
def chromium() -> str:
    """Path of a Chromium to drive, or skip saying why."""
    found = find_chromium()
    if found is None:
        pytest.skip("no chromium on this machine (apt-get install chromium, or set SQ_CHROMIUM); "
                    ".ci/run installs it for CI")
    return found


@dataclass
class Shots:
    """Where screenshots go: the test's tmp dir, copied to $SQ_ARTIFACTS_DIR/dashboard when that is set."""

    folder: Path
    taken: list[Path]

    async def take(self, page: Page, name: str) -> Path:
        path = await page.screenshot(self.folder / f"{len(self.taken) + 1:02d}-{name}.png")
        self.taken.append(path)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Shots]:
    """Screenshots of this test, kept as artefacts even when it fails."""
    taken = Shots(tmp_path / "screenshots", [])
    yield taken
    target = os.environ.get("SQ_ARTIFACTS_DIR")
    if target and taken.taken:
        destination = Path(target) / "dashboard"
        destination.mkdir(parents=True, exist_ok=True)
        for path in taken.taken:
            shutil.copy2(path, destination / path.name)


@pytest.fixture
async def page(chromium: str, tmp_path: Path) -> AsyncIterator[Page]:
    """A fresh tab in a fresh headless Chromium."""
    browser = await Browser.launch(chromium, tmp_path / "chromium-profile")
    try:
        yield await browser.new_page()
    finally:
        await browser.close()
