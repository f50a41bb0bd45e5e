"""`sq processor connector`: replay recordings onto the bus, once or looping with times shifted to now.

Files are replayed in the order given (a REST depth snapshot before the WebSocket diffs that follow
it). With `--loop`, the set is replayed again and again, each pass shifted so its first record is
"now" and with ids derived from the recorded ids and the pass number, so a demo market stays alive
and every pass is new to JetStream's dedupe window.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from events.bus import Bus
from events.ids import derived_id
from events.logs import configure_logging
from events.market import Bar
from events.process import (
    add_bus_arguments,
    add_probe_arguments,
    connect_bus,
    start_service_http,
    stop_on_signals,
)
from events.stopping import Stopped, unless_stopped
from processors.connector.config import ConfigError, ReplayConfig
from processors.connector.recordings import Item, Record, read_bytes, read_records
from processors.connector.replay import ReplayStats, replay

log = logging.getLogger(__name__)
DEFAULT_PORT = 50052
MINUTE_NS = 60_000_000_000


def shifted(items: Iterator[Item], offset_ns: int, loop: int) -> Iterator[Item]:
    """Records moved `offset_ns` later, with ids re-derived for pass `loop` > 0 (pass 0 keeps recorded ids)."""
    for item in items:
        if (loop == 0 and offset_ns == 0) or not isinstance(item, Record):
            yield item
            continue
        event_id = derived_id(item.event.id, "loop", loop) if loop else item.event.id
        moved: dict[str, object] = {"id": event_id, "ts": item.event.ts + offset_ns}
        if isinstance(item.event, Bar):
            moved["open_time"] = item.event.open_time + offset_ns
        event = msgspec.structs.replace(item.event, **moved)
        yield Record(item.line, item.recorded_ns + offset_ns, event)


def _first_recorded_ns(path: Path) -> int:
    for item in read_records(read_bytes(path), name=path.name):
        if isinstance(item, Record):
            return item.recorded_ns
    raise ValueError(f"{path} holds no readable record")


async def replay_files(bus: Bus, config: ReplayConfig, stop: asyncio.Event) -> ReplayStats:
    """Replay the configured files in order (snapshots at full speed, the rest paced), once or until `stop`."""
    total = ReplayStats()
    paths = [Path(p) for p in config.paths]
    loop, speed = config.loop, config.speed
    anchor = _first_recorded_ns(paths[-1])
    passes = 0
    while not stop.is_set():
        # Whole minutes, so shifted bars stay aligned to their interval boundaries.
        offset = (time.time_ns() - anchor) // MINUTE_NS * MINUTE_NS if config.shift_to_now else 0
        for path in paths:
            records = read_records(read_bytes(path), name=path.name, fmt=config.format, venue=config.venue,
                                   symbol=config.symbol, interval=config.interval)
            items = shifted(records, offset, passes if loop else 0)
            pace = 0.0 if ".http." in path.name else speed
            stats = await replay(bus, items, speed=pace, source=config.source, name=path.name,
                                 batch_size=config.batch_size, not_before_ts=config.shift_to_now)
            total.published += stats.published
            total.dead_lettered += stats.dead_lettered
            total.skipped += stats.skipped
            if stop.is_set():
                break
        passes += 1
        log.info("replay pass finished", extra={"pass": passes, "published": total.published})
        if not loop:
            break
    return total


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor connector`."""
    parser.add_argument("paths", nargs="+", type=Path, help="recordings, replayed in this order")
    parser.add_argument("--speed", type=float, default=1.0, help="recorded pace x this; 0 is as fast as possible")
    parser.add_argument("--loop", action="store_true", help="replay again and again until stopped")
    parser.add_argument("--shift-to-now", action="store_true", help="move event times so each pass starts now")
    parser.add_argument("--source", default="replay", help="dead-letter source name (sq.dlq.<source>)")
    parser.add_argument("--format", default=None, help="recording format (detected from name and content if omitted)")
    parser.add_argument("--venue", default=None, help="venue for formats that do not say")
    parser.add_argument("--symbol", default=None, help="symbol for formats that do not say")
    parser.add_argument("--interval", default=None, help="kline interval for files whose name does not say")
    add_bus_arguments(parser)
    add_probe_arguments(parser, default_port=DEFAULT_PORT)


def main(args: argparse.Namespace) -> int:
    """Replay until done (or, with --loop, until SIGINT/SIGTERM)."""
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    configure_logging("connector", args.log_level)
    try:
        config = msgspec.convert({"paths": [str(p) for p in args.paths], "format": args.format, "speed": args.speed,
                                  "venue": args.venue, "symbol": args.symbol, "interval": args.interval,
                                  "source": args.source, "loop": args.loop, "shift_to_now": args.shift_to_now},
                                 ReplayConfig).validate()
    except (msgspec.ValidationError, ConfigError) as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return 2
    missing = [p for p in config.paths if p != "-" and not Path(p).exists()]
    if missing:
        print(f"connector: recording not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    bus = await connect_bus(args, f"connector-{args.source}")
    stop = stop_on_signals()
    http = await start_service_http(args.port, ready=lambda: not stop.is_set(), host=args.host)
    try:
        # A paced replay sleeps through recorded gaps: a signal must not wait for the file to end.
        stats = await unless_stopped(replay_files(bus, config, stop), stop)
    except Stopped:
        log.info("replay stopped by signal")
        return 0
    finally:
        await http.cleanup()
        await bus.close()
    log.info("replay finished", extra={"published": stats.published, "dead_lettered": stats.dead_lettered})
    return 0
