"""File replay connector: publish a recording's events on the bus at recorded pace x speed, or flat out.

A line that cannot be read is logged with its reason, counted, and published as a DeadLetter on
`sq.dlq.<source>`; the replay carries on. Event ids are derived from the recorded facts, so
replaying a file twice inside JetStream's dedupe window publishes each event once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import Counter

from events.audit import DeadLetter
from events.bus import Bus, Outgoing, outgoing
from events.ids import derived_id
from processors.connector.recordings import BadRecord, Item, Record, Skipped

log = logging.getLogger(__name__)

RECORDS = Counter("sq_connector_records_total", "Recorded lines handled by connectors, by outcome",
                  ["source", "outcome"])


@dataclass
class ReplayStats:
    """What one replay did: events published, lines dead-lettered and lines skipped, with reasons."""

    published: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    slept_s: float = 0.0
    reasons: list[str] = field(default_factory=list)


def dead_letter(bad: BadRecord, *, source: str, name: str, ts: int) -> DeadLetter:
    """The DeadLetter for an unreadable line; its id comes from file and line, so a rerun dedupes."""
    return DeadLetter(id=derived_id(f"{source}:{name}:{bad.line}", "dlq"), ts=ts, source=source,
                      subject=f"file:{name}:{bad.line}", reason=bad.reason, payload=bad.raw[:65_536])


def pace_delay(first_recorded_ns: int, recorded_ns: int, started: float, now: float, speed: float) -> float:
    """Seconds to wait before publishing a record so the replay keeps recorded pace x speed (0: never wait)."""
    if speed <= 0:
        return 0.0
    due = started + (recorded_ns - first_recorded_ns) / 1e9 / speed
    return max(0.0, due - now)


async def replay(bus: Bus, items: Iterable[Item], *, speed: float, source: str = "replay", name: str = "-",
                 batch_size: int = 512, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, not_before_ts: bool = False,
                 wall_ns: Callable[[], int] = time.time_ns) -> ReplayStats:
    """Publish every record; dead-letter bad lines; count skipped ones. Returns the totals.

    With `not_before_ts` (a replay shifted to now), no event is published before the wall clock has
    reached its `ts`: the recorded receive time can trail the venue's event time by a few ms, and
    no event may carry a time ahead of the broker's clock (ARCHITECTURE.md principle 11).
    """
    stats = ReplayStats()
    pending: list[Outgoing] = []
    first_ns: int | None = None
    last_ns = 0
    started = clock()

    async def flush() -> None:
        if pending:
            await bus.publish_batch_encoded(pending)
            stats.published += len(pending)
            RECORDS.labels(source, "published").inc(len(pending))
            pending.clear()

    for item in items:
        match item:
            case Record(recorded_ns=recorded_ns, event=event):
                if first_ns is None:
                    first_ns, started = recorded_ns, clock()
                delay = pace_delay(first_ns, recorded_ns, started, clock(), speed)
                if not_before_ts:
                    delay = max(delay, (event.ts - wall_ns()) / 1e9)
                if delay > 0:
                    await flush()
                    stats.slept_s += delay
                    await sleep(delay)
                last_ns = max(last_ns, recorded_ns)
                pending.append(outgoing(event))
                # Paced replays flush before each wait, so nothing due is held back.
                if len(pending) >= batch_size:
                    await flush()
            case BadRecord():
                await flush()  # keep the bus in file order around the letter
                letter = dead_letter(item, source=source, name=name, ts=last_ns)
                await bus.publish(letter)
                stats.dead_lettered += 1
                stats.reasons.append(item.reason)
                RECORDS.labels(source, "dead_lettered").inc()
                log.warning("bad recorded line dead-lettered",
                            extra={"source": source, "file": name, "line": item.line, "reason": item.reason})
            case Skipped():
                stats.skipped += 1
                RECORDS.labels(source, "skipped").inc()
                log.debug("recorded line skipped", extra={"file": name, "line": item.line, "reason": item.reason})
    await flush()
    return stats


__all__ = ["RECORDS", "ReplayStats", "dead_letter", "pace_delay", "replay"]
