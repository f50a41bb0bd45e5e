"""The aggregator: the pure core on recorded input, and the runner over a real broker with probes."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from events import Bus, DeadLetter, decode
from events.market import Bar, BookDelta, BookTop, Trade
from events.process import bound_port, start_service_http
from processors.aggregator.config import AggregatorConfig, ConfigError
from processors.aggregator.core import handle, initial_state
from processors.aggregator.runner import decide, evolve, wanted
from processors.connector.recordings import Record, read_bytes, read_records
from processors.connector.replay import replay
from processors.host import ProcessorHost
from tests.conftest import eventually

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def recorded(*names: str) -> list:
    return [item.event for name in names for item in read_records(read_bytes(SAMPLES / name), name=name)
            if isinstance(item, Record)]


def test_core_turns_snapshots_and_diffs_into_tops_and_gaps_into_dead_letters() -> None:
    events = recorded("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0")
    victim = [e for e in events if isinstance(e, BookDelta) and e.symbol == "NKNUSDT"][20]
    state = initial_state(AggregatorConfig())
    outputs = [out for event in events if event is not victim for out in handle(state, event)]
    tops = [o for o in outputs if isinstance(o, BookTop)]
    letters = [o for o in outputs if isinstance(o, DeadLetter)]
    assert len(letters) == 1 and "gap" in letters[0].reason and "resync" in letters[0].reason
    # 4 snapshots, 23 diffs of the other symbols, NKNUSDT diffs 1..19 (0 is stale); then it waits.
    assert len(tops) == 4 + 23 + 19
    again = initial_state(AggregatorConfig())
    assert [o.id for event in events if event is not victim for o in handle(again, event)] == [o.id for o in outputs]


def test_core_bars_for_every_configured_interval_with_explicit_empty_bars() -> None:
    state = initial_state(AggregatorConfig(intervals=("1s", "1m")))
    base = 1_700_000_040_000_000_000  # a whole minute

    def trade(i: int, seconds: float, price: str) -> Trade:
        return Trade(id=f"t{i}", ts=base + int(seconds * 1e9), venue="binance", symbol="XRPETH",
                     price=Decimal(price), quantity=Decimal("2"))

    out = []
    for i, (seconds, price) in enumerate([(0.1, "1.0"), (0.5, "1.2"), (3.2, "0.9"), (61, "1.1")]):
        out += handle(state, trade(i, seconds, price))
    one_s = [b for b in out if isinstance(b, Bar) and b.interval == "1s"]
    assert [(b.open_time - base) // 10**9 for b in one_s] == list(range(0, 61))
    assert (one_s[0].open, one_s[0].high, one_s[0].close, one_s[0].volume) == (Decimal("1.0"), Decimal("1.2"), Decimal("1.2"), 4)
    assert one_s[1].trade_count == 0 and one_s[1].close == one_s[1].open == Decimal("1.2")
    minute = [b for b in out if isinstance(b, Bar) and b.interval == "1m"]
    assert len(minute) == 1 and minute[0].low == Decimal("0.9") and minute[0].trade_count == 3


def test_config_names_every_bad_field() -> None:
    with pytest.raises(ConfigError) as info:
        AggregatorConfig(intervals=("1m", "2w", "2d"), top_every_ms=-1, max_ticks=5).validate()
    assert [p[0] for p in info.value.problems] == ["intervals[1]", "intervals[2]", "top_every_ms", "max_ticks"]


async def test_runner_publishes_tops_from_replayed_recordings_and_serves_probes(bus: Bus, tmp_path: Path) -> None:
    host = ProcessorHost(name="aggregator", bus=bus, wal_root=tmp_path / "wal", streams=("SQ_MD",),
                         state=initial_state(AggregatorConfig()), decide=decide, evolve=evolve, wanted=wanted)
    http = await start_service_http(0, host.caught_up.is_set, host="127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        await eventually(host.caught_up.is_set, message="aggregator following")
        for name in ("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0"):
            await replay(bus, read_records(read_bytes(SAMPLES / name), name=name), speed=0, name=name)

        async def tops() -> int:
            info = await bus.js.stream_info("SQ_MD")
            count = 0
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                event = decode((await bus.js.get_msg("SQ_MD", seq)).data)
                count += isinstance(event, BookTop) and event.causation_id is not None
            return count

        await eventually(lambda: _equals(tops(), 176), timeout=30, message="176 aggregator book tops")
        port = bound_port(http)
        async with aiohttp.ClientSession() as session:
            for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == status
                    body = await response.text()
            assert "sq_processor_outputs_total" in body
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await http.cleanup()


async def _equals(value, expected: int) -> bool:  # noqa: ANN001 - an awaitable count
    return await value == expected
