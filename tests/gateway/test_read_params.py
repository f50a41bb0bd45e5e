"""Query parameters that once answered 500 or published an unreadable event now answer 400 naming the parameter;
the memo of answered reads stays fresh and small; the newest rows read from a recent window are those of the whole history."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

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


async def test_the_newest_rows_are_the_same_from_the_recent_window_as_from_the_whole_history(
        running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints", spill_after_rows=400)
    running.gateway.projections = projections
    # An order every 10 s for 50 minutes, most of it handed to Parquet parts on disk.
    for start in range(0, 300, 60):
        _feed(projections, _history(60, start=start), first_seq=start * 10 + 1)
        await projections.checkpoint()
    assert sum(projections.cold.rows.values()) > 0
    asked: list[str] = []
    query = projections.query
    monkeypatch.setattr(projections, "query", lambda sql, *args: asked.append(sql) or query(sql, *args))
    whole = {"orders": "select * from orders where account = 'ACC1' order by created_ts desc",
             "fills": "select * from fills where account = 'ACC1' order by ts desc",
             "decisions": "select * from decisions where account = 'ACC1' and not accepted order by ts desc",
             "pnl": "select * from pnl where account = 'ACC1' order by ts desc"}
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    # Ten minutes hold 30 of ACC1's orders (3 refused): the first of each pair is answered from the
    # window alone, the second needs the whole history.
    cases = [("orders", "/v1/orders?", 5, 1), ("orders", "/v1/orders?", 200, 2),
             ("fills", "/v1/fills?", 20, 1), ("fills", "/v1/fills?", 100, 2),
             ("decisions", "/v1/decisions?accepted=false&", 2, 1), ("decisions", "/v1/decisions?accepted=false&", 10, 2),
             ("pnl", "/v1/pnl?", 10, 1), ("pnl", "/v1/pnl?", 2000, 2)]
    for name, path, limit, reads in cases:
        asked.clear()
        response = await running.client.get(f"{path}limit={limit}", headers=headers)
        assert response.status == 200, await response.text()
        answered = (await response.json())[name]
        expected = query(whole[name], projections.tables(), max_rows=limit).table.to_pylist()
        if name == "pnl":
            expected.sort(key=lambda row: (row["account"], row["ts"]))
        key = {"orders": "order_id", "fills": "report_id", "decisions": "decision_id", "pnl": "ts"}[name]
        assert [row[key] for row in answered] == [row[key] for row in expected], (name, limit)
        assert len(answered) == min(limit, len(expected)) and len(asked) == reads, (name, limit, asked)
        assert f"{'created_ts' if name == 'orders' else 'ts'} >= ?" in asked[0]
    # The window moves with every event, yet a question is remembered once, not once per window.
    remembered = len(projections.answers)
    for start in range(300, 303):
        _feed(projections, _history(1, start=start), first_seq=start * 10 + 1)
        assert (await running.client.get("/v1/orders?limit=5", headers=headers)).status == 200
    assert len(projections.answers) == remembered


async def test_decisions_refuses_an_accepted_filter_that_is_not_true_or_false(running: Running) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    response = await running.client.get("/v1/decisions?accepted=yes", headers=headers)
    body = await response.json()
    assert response.status == 400 and "accepted" in body["detail"], body
