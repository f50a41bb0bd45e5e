"""A replay shifted to now never publishes an event before the wall clock reaches its time (1x, no future)."""

from __future__ import annotations

from pathlib import Path

from events import Bus, decode
from processors.connector.recordings import Record, read_bytes, read_records
from processors.connector.replay import replay
from processors.connector.runner import shifted

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
KLINES = "nautilus_ADABTC-1m-2021-11-27.csv"
MINUTE_NS = 60_000_000_000


async def test_shifted_kline_replay_when_bars_close_later_than_now_then_each_waits_for_its_close(bus: Bus) -> None:
    # A made-up wall clock that sleeping advances, so the test waits for nothing real.
    wall = [0]

    async def sleep(seconds: float) -> None:
        wall[0] += int(seconds * 1e9)

    records = [item for item in read_records(read_bytes(SAMPLES / KLINES), name=KLINES) if isinstance(item, Record)]
    # Shift so the first bar closes exactly "now" and the rest close one minute apart after it.
    wall[0] = records[0].event.ts + 7 * MINUTE_NS
    shifted_items = list(shifted(iter(records), 7 * MINUTE_NS, 1))

    stats = await replay(bus, shifted_items, speed=0, name=KLINES, sleep=sleep, not_before_ts=True,
                         wall_ns=lambda: wall[0], clock=lambda: wall[0] / 1e9)
    assert stats.published == len(records) == 10
    info = await bus.js.stream_info("SQ_MD")
    bars = [decode((await bus.js.get_msg("SQ_MD", seq)).data) for seq in range(1, info.state.last_seq + 1)]
    closes = [bar.ts for bar in bars]
    assert closes == [r.event.ts + 7 * MINUTE_NS for r in records]
    # Flat out (speed 0) would publish all ten at once; held to their time, the clock ends at the last close.
    assert wall[0] == closes[-1]
    assert all(bar.ts == bar.open_time + MINUTE_NS for bar in bars)


async def test_replay_without_the_guard_when_speed_is_zero_then_it_does_not_wait(bus: Bus) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    records = [item for item in read_records(read_bytes(SAMPLES / KLINES), name=KLINES) if isinstance(item, Record)]
    stats = await replay(bus, records, speed=0, name=KLINES, sleep=sleep)
    assert stats.published == 10 and waits == []
