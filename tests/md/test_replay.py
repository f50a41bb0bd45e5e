"""The file replay connector over a real broker: events published, bad lines dead-lettered, pace kept."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from events import Bus, DeadLetter, decode
from processors.connector.config import ConfigError, ReplayConfig
from processors.connector.recordings import Record, read_bytes, read_records
from processors.connector.replay import pace_delay, replay

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


async def stream_events(bus: Bus, stream: str) -> list:
    info = await bus.js.stream_info(stream)
    return [decode((await bus.js.get_msg(stream, seq)).data)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)] if info.state.messages else []


async def test_replay_publishes_records_and_dead_letters_bad_lines_then_keeps_going(bus: Bus, tmp_path: Path) -> None:
    lines = (SAMPLES / "nautilus_ADABTC-1m-2021-11-27.csv").read_text().splitlines()
    broken = lines[:3] + ["1637971380000,0.0000285"] + lines[3:6] + ["1637971620000,abc,1,1,1,1,1,1,1,1,1,0"] + lines[6:]
    path = tmp_path / "ADABTC-1m-2021-11-27.csv"
    path.write_text("\n".join(broken) + "\n")
    items = list(read_records(read_bytes(path), name=path.name))
    stats = await replay(bus, items, speed=0, source="replay", name=path.name)
    assert (stats.published, stats.dead_lettered) == (10, 2)
    bars = await stream_events(bus, "SQ_MD")
    assert len(bars) == 10 and [b.open_time for b in bars] == sorted(b.open_time for b in bars)
    letters = [e for e in await stream_events(bus, "SQ_AUDIT") if isinstance(e, DeadLetter)]
    assert [(d.source, d.subject) for d in letters] == [("replay", f"file:{path.name}:4"), ("replay", f"file:{path.name}:8")]
    assert "abc" in letters[1].payload and letters[0].reason
    # The same file again: ids are derived from the recorded facts, so JetStream drops the copies.
    await replay(bus, items, speed=0, source="replay", name=path.name)
    assert (await bus.js.stream_info("SQ_MD")).state.messages == 10


async def test_replay_of_a_websocket_recording_with_truncated_json(bus: Bus, tmp_path: Path) -> None:
    lines = (SAMPLES / "cryptofeed_BINANCE.ws.1.0").read_text().splitlines()
    lines.insert(5, lines[5][: len(lines[5]) // 2])                 # truncated JSON
    stamp, _, body = lines[2].partition(": ")
    message = json.loads(body)
    message["data"]["U"] = "abc"                                      # wrong type
    lines.insert(9, f"{stamp}: {json.dumps(message)}")
    path = tmp_path / "BINANCE.ws.1.0"
    path.write_text("\n".join(lines) + "\n")
    stats = await replay(bus, read_records(read_bytes(path), name=path.name), speed=0, name=path.name)
    assert stats.dead_lettered == 2 and stats.skipped == 2
    assert "truncated" in stats.reasons[0] and "Expected `int`, got `str` - at `$.U`" in stats.reasons[1]
    assert stats.published == 177 + 84 + 2
    assert (await bus.js.stream_info("SQ_MD")).state.messages == stats.published


async def test_paced_replay_waits_recorded_gaps_divided_by_speed() -> None:
    class FakeBus:
        published: list = []

        async def publish_batch_encoded(self, items):  # noqa: ANN001, ANN201 - stand-in for Bus
            self.published.extend(items)

    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    records = [item for item in read_records(read_bytes(SAMPLES / "cryptofeed_BINANCE.ws.1.0"),
                                             name="BINANCE.ws.1.0") if isinstance(item, Record)][:40]
    fake = FakeBus()
    stats = await replay(fake, records, speed=4.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    span = (records[-1].recorded_ns - records[0].recorded_ns) / 1e9
    assert stats.published == 40 and len(fake.published) == 40
    assert sum(waits) == pytest.approx(span / 4.0, rel=1e-6)
    assert pace_delay(0, 10**9, 5.0, 5.0, 0) == 0.0


def test_replay_config_names_every_bad_field() -> None:
    with pytest.raises(ConfigError) as info:
        ReplayConfig(paths=("x",), speed=-1, symbol="BTC/USDT", batch_size=0).validate()
    assert {p[0] for p in info.value.problems} == {"speed", "symbol", "batch_size"}
    with pytest.raises(msgspec.ValidationError, match="spede"):
        msgspec.convert({"paths": ["x"], "spede": 2}, ReplayConfig)
