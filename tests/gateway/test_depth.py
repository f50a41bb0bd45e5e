"""GET /v1/depth: the gateway folds the book events on the bus into L2 books and serves their best levels."""

from __future__ import annotations

import time
from decimal import Decimal as D

from events import BookDelta, BookSnapshot, Bus, derived_id
from tests.conftest import eventually
from tests.gateway.conftest import Running


async def test_depth_when_a_snapshot_then_a_delta_arrive_then_the_ladder_shows_the_levels_best_first(
        running: Running, bus: Bus) -> None:
    token = await running.login("vic")
    auth = {"Authorization": f"Bearer {token}"}
    missing = await running.client.get("/v1/depth/binance/NKNUSDT", headers=auth)
    assert missing.status == 404 and "no book for binance/NKNUSDT" in (await missing.json())["detail"]

    now = time.time_ns()
    await bus.publish(BookSnapshot(id=derived_id("d", "snap", now), ts=now, venue="binance", symbol="NKNUSDT",
                                   last_update_id=10, bids=[(D("0.35"), D("5")), (D("0.34"), D("7")),
                                                            (D("0.33"), D("9"))],
                                   asks=[(D("0.36"), D("4")), (D("0.37"), D("6"))]))
    await bus.publish(BookDelta(id=derived_id("d", "delta", now), ts=now + 1, venue="binance", symbol="NKNUSDT",
                                first_update_id=11, last_update_id=11, bids=[(D("0.35"), D("0"))],
                                asks=[(D("0.355"), D("2"))]))

    async def applied() -> bool:
        response = await running.client.get("/v1/depth/binance/NKNUSDT?levels=2", headers=auth)
        return response.status == 200 and (await response.json())["ts"] == now + 1

    await eventually(applied, message="snapshot and delta applied")
    body = await (await running.client.get("/v1/depth/binance/NKNUSDT?levels=2", headers=auth)).json()
    assert body["synced"] is True
    assert body["bids"] == [["0.34", "7"], ["0.33", "9"]]
    assert body["asks"] == [["0.355", "2"], ["0.36", "4"]]
    listing = await (await running.client.get("/v1/depth", headers=auth)).json()
    assert listing == {"books": [{"venue": "binance", "symbol": "NKNUSDT", "ts": now + 1, "synced": True}]}

    for bad in ("0", "51", "ten"):
        response = await running.client.get(f"/v1/depth/binance/NKNUSDT?levels={bad}", headers=auth)
        assert response.status == 400 and "levels" in (await response.json())["detail"]
    assert (await running.client.get("/v1/depth")).status == 401
