"""A running gateway on a real broker, with a trader, a viewer and a risk officer enrolled."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events import Bus
from gateway.app import create_app
from gateway.state import Gateway, GatewayConfig

PASSWORD = "correct horse battery staple"


@dataclass
class Running:
    """The gateway under test and a client for it."""

    gateway: Gateway
    client: TestClient  # type: ignore[type-arg]

    async def login(self, name: str, *, at: float | None = None) -> str:
        """Log `name` in with a fresh TOTP code and return the access token."""
        code = self.gateway.users.totp_now(name, at)
        response = await self.client.post("/v1/auth/login", json={"username": name, "password": PASSWORD,
                                                                   "totp": code})
        assert response.status == 200, await response.text()
        token: str = (await response.json())["access_token"]
        return token


@pytest.fixture
async def running(tmp_path: Path, bus: Bus) -> AsyncIterator[Running]:
    """Gateway with users alice (trader ACC1), vic (viewer ACC1), rita (risk), root (admin)."""
    config = GatewayConfig(data_dir=tmp_path / "gw", durable_ack=False)
    gateway = Gateway.open(config, bus)
    gateway.users.add("alice", PASSWORD, ["trader"], ["ACC1"])
    gateway.users.add("vic", PASSWORD, ["viewer"], ["ACC1"])
    gateway.users.add("rita", PASSWORD, ["risk"], [])
    gateway.users.add("root", PASSWORD, ["admin"], [])
    client = TestClient(TestServer(create_app(gateway)))
    await client.start_server()
    yield Running(gateway, client)
    await client.close()


def previous_window() -> float:
    """A time 30 s ago: a TOTP code from the previous step, still inside the ±1 step window."""
    return time.time() - 30
