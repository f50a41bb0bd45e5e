"""Time travel from the as-of ladder equals a rebuild from the first record, and reads at most one interval."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import encode
from events.subjects import subscribed
from processors.snapshots import encode_snapshot, state_digest
from projections.ladder import Ladder
from projections.service import STREAMS, SUBSCRIPTIONS
from projections.state import ProjectionState, evolve
from store import WalWriter
from store.follow import history, last_recorded
from tests.processors._recorded_run import recorded_run

HOUR = 3_600 * 10**9


def _write_wal(root: Path) -> None:
    """The recorded run's two streams as the recorder writes them (broker time, subject, type, payload)."""
    log = recorded_run()
    for stream in STREAMS:
        with WalWriter.open(root / stream, contiguous=True, segment_size=1 << 16) as writer:
            for envelope in log:
                if envelope.stream == stream:
                    writer.append(encode(envelope.event), ts=envelope.stored_ts, subject=envelope.subject,
                                  type=type(envelope.event).__name__)


def _rebuilt(wal_root: Path, ts: int) -> ProjectionState:
    """Every event the projections read stored at or before ts, folded from the first record (what as_of used to do)."""
    state = ProjectionState()
    for envelope in history(wal_root, STREAMS, {}, until=last_recorded(wal_root, STREAMS), source="test",
                            wanted=subscribed(SUBSCRIPTIONS)):
        if envelope.stored_ts > ts:
            break
        evolve(state, envelope)
    return state


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ladder]:
    root = tmp_path_factory.mktemp("ladder")
    _write_wal(root / "wal")
    ladder = Ladder(root / "wal", root / "ladder", streams=STREAMS, every_records=15, every_ns=HOUR)
    ladder.catch_up()
    return root / "wal", ladder


def test_catch_up_writes_rungs_as_history_passes(built: tuple[Path, Ladder]) -> None:
    _, ladder = built
    stamps = [stamp for stamp, _ in ladder.rungs()]
    assert len(stamps) >= 3 and stamps == sorted(stamps)
    assert any(ladder.state.positions.values()), "the run's fills made positions"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_positions_as_of_any_time_equal_a_rebuild_from_the_first_record(built: tuple[Path, Ladder],
                                                                      data: st.DataObject) -> None:
    wal_root, ladder = built
    log = recorded_run()
    ts = data.draw(st.integers(min_value=log[0].stored_ts - 1, max_value=log[-1].stored_ts + 1), label="as_of")
    from_ladder, rebuilt = ladder.as_of(ts), _rebuilt(wal_root, ts)
    assert from_ladder.position_rows() == rebuilt.position_rows()
    assert state_digest(from_ladder.positions) == state_digest(rebuilt.positions)


def test_as_of_starts_from_the_nearest_rung_before_the_time(built: tuple[Path, Ladder]) -> None:
    _, ladder = built
    rungs = ladder.rungs()
    stamp = rungs[len(rungs) // 2][0]
    header, _ = ladder.load(stamp + 1) or (None, None)
    assert header is not None and header.last_stored_ts == stamp
    assert ladder.load(rungs[0][0] - 1) is None, "before the first rung there is none: replay from the start"


def test_a_corrupt_rung_is_skipped_and_the_answer_is_unchanged(built: tuple[Path, Ladder], tmp_path: Path) -> None:
    wal_root, ladder = built
    copy = Ladder(wal_root, tmp_path / "ladder", streams=STREAMS)
    copy.directory.mkdir()
    for _, path in ladder.rungs():
        (copy.directory / path.name).write_bytes(path.read_bytes())
    stamp, newest = copy.rungs()[-1]
    damaged = bytearray(newest.read_bytes())
    damaged[100] ^= 1
    newest.write_bytes(bytes(damaged))
    assert copy.as_of(stamp).position_rows() == _rebuilt(wal_root, stamp).position_rows()


def test_retention_keeps_the_last_day_then_hourly_and_every_n_records(tmp_path: Path) -> None:
    ladder = Ladder(tmp_path / "wal", tmp_path / "ladder", streams=STREAMS, keep_all_ns=24 * HOUR,
                    keep_every_records=1_000)
    ladder.directory.mkdir()
    from processors.snapshots import FORMAT_VERSION, SnapshotHeader
    from projections.ladder import _EXPECTED

    def rung(stamp: int, records: int) -> None:
        header = SnapshotHeader(format=FORMAT_VERSION, processor=_EXPECTED.processor, partition=_EXPECTED.partition,
                                state_version=_EXPECTED.state_version, origin=_EXPECTED.origin,
                                positions={"SQ_MD": records}, generation=1, last_stored_ts=stamp, events=0)
        (ladder.directory / f"rung-{stamp:020d}.snap").write_bytes(encode_snapshot(header, ProjectionState()))

    base = 1_000 * HOUR
    # Two days of rungs every 10 minutes, 100 records apart; then a burst of records.
    for n in range(6 * 48):
        rung(base + n * HOUR // 6, n * 100)
    rung(base + 10 * HOUR + 1, 7_000)      # inside hour 10, 1,000 records after its first rung: kept too
    ladder.prune()
    stamps = [stamp for stamp, _ in ladder.rungs()]
    newest = stamps[-1]
    recent = [s for s in stamps if s >= newest - 24 * HOUR]
    old = [s for s in stamps if s < newest - 24 * HOUR]
    assert len(recent) == 6 * 24 + 1, "every rung of the last day is kept"
    assert sorted({s // HOUR for s in old}) == sorted({(base + n * HOUR // 6) // HOUR for n in range(6 * 24)
                                                       if base + n * HOUR // 6 < newest - 24 * HOUR})
    assert base + 10 * HOUR + 1 in old


async def test_projections_without_a_wal_serve_what_the_broker_still_holds_and_say_what_is_missing(
        bus, tmp_path: Path) -> None:
    import asyncio
    from decimal import Decimal as D

    from events import Trade, new_event_id
    from processors.aggregator.tape import summarise
    from projections.service import Projections
    from tests.conftest import eventually

    trades = [summarise(Trade(id=new_event_id(), ts=1_700_000_000_000_000_000 + i, venue="binance", symbol="XYZ",
                              price=D(10 + i), quantity=D(1))) for i in range(10)]
    await bus.publish_batch(trades)
    await bus.js.purge_stream("SQ_MD", keep=3)          # the broker's retention dropped the head
    projections = Projections(tmp_path / "no-wal", tmp_path / "checkpoints")
    stop = asyncio.Event()
    task = asyncio.create_task(projections.follow(bus, stop))
    try:
        await eventually(projections.caught_up.is_set, message="projections following")
        assert projections.history_missing == {"SQ_MD": 7}
        await eventually(lambda: projections.state.marks.get("XYZ", (None, 0))[0] == D(19),
                         message="what the broker holds is folded in")
    finally:
        stop.set()
        await task
