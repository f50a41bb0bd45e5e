"""The stack as processes with the gateway in front: an order over HTTP fills, as_of looks back, and a
SIGKILLed gateway comes back serving the same positions."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path

import aiohttp

from events import Bus, free_port
from gateway.users import UserStore
from tests.conftest import eventually
from tests.pipeline.conftest import PASSWORD, ProcessStack, gateway_login, publish_market


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    async with session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        body: dict = await response.json()  # type: ignore[type-arg]
        return body


async def test_order_over_http_fills_as_of_looks_back_and_a_killed_gateway_serves_the_same_positions(
        bus: Bus, processes: ProcessStack, tmp_path: Path) -> None:
    store = UserStore(tmp_path / "secrets")
    store.add("tina", PASSWORD, ["trader"], ["ACC1"])
    port = free_port()
    processes.commands["gateway"] = ["gateway", "--http-port", str(port)]
    for name in ("recorder", "risk", "router", "venue-sim", "gateway"):
        processes.start(name)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async def ready() -> bool:
            try:
                async with session.get(f"{base}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, timeout=30, message="gateway ready")
        await publish_market(bus, time.time_ns())
        headers = await gateway_login(session, base, store, "tina")
        order = {"account": "ACC1", "client_order_id": "http-twap", "symbol": "XYZ", "side": "BUY",
                 "quantity": "20", "limit_price": "10.50", "algo": {"kind": "TWAP", "duration_s": 0.4, "slices": 2}}
        async with session.post(f"{base}/v1/orders", json=order, headers=headers) as response:
            accepted = await response.json()
            assert response.status == 202 and accepted["durable"] is True, accepted
        order_id = accepted["order_id"]

        async def filled() -> bool:
            body = await _get(session, f"{base}/v1/orders/{order_id}", headers)
            return bool(body["status"] == "FILLED")

        await eventually(filled, timeout=30, message="TWAP filled over HTTP")
        detail = await _get(session, f"{base}/v1/orders/{order_id}", headers)
        assert D(detail["filled_quantity"]) == 20 and len(detail["children"]) == 2 and detail["decision"]["accepted"]
        first = await _get(session, f"{base}/v1/positions", headers)
        assert [D(p["quantity"]) for p in first["positions"]] == [D(20)]
        between = time.time_ns()
        await asyncio.sleep(0.2)

        second_order = {**order, "client_order_id": "http-market", "quantity": "5", "algo": {"kind": "MARKET"}}
        async with session.post(f"{base}/v1/orders", json=second_order, headers=headers) as response:
            assert response.status == 202
        await eventually(lambda: _position_is(session, base, headers, D(25)), timeout=30, message="second fill")

        earlier = await _get(session, f"{base}/v1/positions?as_of={between}", headers)
        assert [D(p["quantity"]) for p in earlier["positions"]] == [D(20)]

        before_kill = await _get(session, f"{base}/v1/positions", headers)
        processes.kill("gateway")
        processes.start("gateway")
        await eventually(ready, timeout=30, message="gateway back after SIGKILL")
        after = await _get(session, f"{base}/v1/positions", headers)
        assert after["positions"] == before_kill["positions"]
        audit = await _get(session, f"{base}/v1/audit/orders/{order_id}", headers)
        kinds = [event["event_type"] for event in audit["events"]]
        assert kinds[0] == "OrderIntent" and "RiskDecision" in kinds and kinds.count("ChildOrder") == 2
        assert all(event["seq"] > 0 and event["stream"] == "SQ_TRADING" for event in audit["events"])


async def _position_is(session: aiohttp.ClientSession, base: str, headers: dict[str, str], quantity: D) -> bool:
    body = await _get(session, f"{base}/v1/positions", headers)
    return [D(p["quantity"]) for p in body["positions"]] == [quantity]
