"""Projections following the bus: quiet periods, checkpoints, and a restart from the checkpoint."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from events import Bus, Trade, TradeSummary, new_event_id
from processors.aggregator.tape import summarise
from projections.checkpoint import load_checkpoint
from projections.service import Projections
from tests.conftest import eventually


def _trade(price: str) -> TradeSummary:
    """What the aggregator publishes for a lone trade: projections mark from summaries, not from each trade."""
    return summarise(Trade(id=new_event_id(), ts=1_700_000_000_000_000_000, venue="SIM", symbol="XYZ",
                           price=D(price), quantity=D("1")))


async def test_projections_keep_following_after_quiet_periods_and_checkpoint_what_they_saw(
        bus: Bus, tmp_path: Path) -> None:
    projections = Projections(tmp_path / "wal", tmp_path / "checkpoints", checkpoint_every_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(projections.follow(bus, stop))
    await eventually(projections.caught_up.is_set, message="following")
    await bus.publish(_trade("10"))
    await eventually(lambda: projections.state.marks.get("XYZ", (None,))[0] == D("10"), message="first trade")
    await asyncio.sleep(0.5)  # several checkpoint intervals with nothing arriving
    await bus.publish(_trade("11"))
    await eventually(lambda: projections.state.marks.get("XYZ", (None,))[0] == D("11"), message="after quiet")
    stop.set()
    await asyncio.wait_for(task, 10)
    checkpoint = load_checkpoint(tmp_path / "checkpoints")
    assert checkpoint is not None and checkpoint.marks["XYZ"] == projections.state.marks["XYZ"]
    restarted = Projections(tmp_path / "wal", tmp_path / "checkpoints")
    restarted.load_and_catch_up()
    assert restarted.state.marks["XYZ"][0] == D("11")
    assert restarted.state.stream_positions["SQ_MD"] == 2
