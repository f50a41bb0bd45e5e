"""After a restart: a live connector's children and what was reported of them, from the WAL and JetStream.

A connector keeps no state of its own on disk (ARCHITECTURE.md, principle 4). Before it listens
for order updates it reads `sq.exec.child.<venue>.*` and `sq.exec.report.<venue>.*` from the WAL
(`<data-dir>/wal`) and whatever JetStream holds beyond it, so updates about children an earlier run
placed are still recognised (Binance also recovers working children through `openOrders` /
`myTrades`), and what it already published is not published again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from events.bus import Bus
from events.codec import AnyEvent
from events.subjects import STREAM_TRADING
from store.follow import LiveFeed, history, last_recorded


async def restore_orders(venue: str, apply: Callable[[AnyEvent], None], bus: Bus, wal_root: Path) -> int:
    """Fold the venue's children and reports, oldest first, through `apply`; returns how many were read."""
    streams = [STREAM_TRADING.name]
    prefixes = (f"sq.exec.child.{venue}.", f"sq.exec.report.{venue}.")

    def _wanted(subject: str) -> bool:
        return subject.startswith(prefixes)

    def from_wal() -> tuple[int, dict[str, int]]:
        until = last_recorded(wal_root, streams)
        count = 0
        for envelope in history(wal_root, streams, {}, until=until, source=venue, wanted=_wanted):
            apply(envelope.event)
            count += 1
        return count, until

    count, positions = await asyncio.to_thread(from_wal)
    feed = LiveFeed(bus, streams, positions, source=venue, wanted=_wanted)
    await feed.start()   # reads what JetStream holds beyond the WAL before anything live
    try:
        for envelope in feed.drain(1_000_000):
            apply(envelope.event)
            count += 1
    finally:
        await feed.stop()
    return count


__all__ = ["restore_orders"]
