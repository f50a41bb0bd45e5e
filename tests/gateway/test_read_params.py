"""Query parameters that once answered 500 or published an unreadable event now answer 400 naming the parameter;
the memo of answered reads stays fresh and small."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from events import Bus, OrderIntent, subject_for
from projections.service import Projections
from projections.state import evolve
from store.follow import Envelope
from tests.gateway.conftest import Running
from tests.projections.test_cold import _feed, _history


async def test_non_ascii_digits_in_limit_and_as_of_are_400(running: Running) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    for path, name in (("/v1/orders?limit=²", "limit"), ("/v1/pnl?as_of=²", "as_of"),
                       ("/v1/positions?as_of=99999999999999999999999", "as_of")):
        response = await running.client.get(path, headers=headers)
        body = await response.json()
        assert response.status == 400 and name in body["detail"], (path, body)


async def test_cancel_of_an_over_long_order_id_is_400_and_publishes_nothing(running: Running, bus: Bus) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    response = await running.client.delete("/v1/orders/" + "x" * 65, headers=headers)
    assert response.status == 400 and "order_id" in (await response.json())["detail"]
    assert (await bus.js.stream_info("SQ_TRADING")).state.messages == 0


async def test_remembered_answers_follow_the_projection_and_hold_no_old_tables(running: Running,
                                                                               tmp_path: Path) -> None:
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints")
    running.gateway.projections = projections
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}

    async def order_ids() -> list[str]:
        response = await running.client.get("/v1/orders", headers=headers)
        assert response.status == 200
        return sorted(row["order_id"] for row in (await response.json())["orders"])

    seen: list[str] = []
    for n in range(3):
        intent = OrderIntent(id=f"memo-{n}", ts=1_700_000_000_000_000_000 + n, account="ACC1",
                             client_order_id=f"memo-{n}", symbol="XYZ", side="BUY", quantity=Decimal(1))
        evolve(projections.state, Envelope(intent, "SQ_TRADING", 1000 + n, subject_for(intent), intent.ts, live=True))
        seen.append(intent.id)
        assert await order_ids() == seen == await order_ids()    # fresh after a change, the same when asked again
    # The memo keeps table versions and rows, never a table: old tables are free to go.
    kept = [part for entry in projections.answers.values() for part in entry]
    assert kept and not any(isinstance(part, pa.Table) for part in kept)


async def test_pnl_answers_the_latest_points_oldest_first(running: Running, tmp_path: Path) -> None:
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints")
    running.gateway.projections = projections
    _feed(projections, _history(12))
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    response = await running.client.get("/v1/pnl?limit=3", headers=headers)
    assert response.status == 200
    answered = [(row["account"], row["ts"]) for row in (await response.json())["pnl"]]
    mine = sorted(point.ts for point in projections.state.pnl if point.account == "ACC1")
    assert len(mine) > 3 and answered == [("ACC1", ts) for ts in mine[-3:]]
