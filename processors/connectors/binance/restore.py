"""After a restart: the Binance connector's children and what was reported of them, from the WAL and JetStream.

The connector keeps no state of its own on disk (ARCHITECTURE.md, principle 4). Before it
subscribes to the user-data stream it reads `sq.exec.child.binance.*` and `sq.exec.report.binance.*`
from the WAL (`<data-dir>/wal`) and whatever JetStream holds beyond it, so fills of children an
earlier run placed are still recognised, working children are recovered through `openOrders` /
`myTrades`, and a fill it already published is not published again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from events.bus import Bus
from events.subjects import STREAM_TRADING
from processors.connectors.binance.executions import ExecutionBook
from store.follow import LiveFeed, history, last_recorded

PREFIXES = ("sq.exec.child.binance.", "sq.exec.report.binance.")


def _wanted(subject: str) -> bool:
    return subject.startswith(PREFIXES)


async def restore_book(book: ExecutionBook, bus: Bus, wal_root: Path) -> int:
    """Fold the connector's children and reports into `book`; returns how many events were read."""
    streams = [STREAM_TRADING.name]

    def from_wal() -> tuple[int, dict[str, int]]:
        until = last_recorded(wal_root, streams)
        count = 0
        for envelope in history(wal_root, streams, {}, until=until, source="binance", wanted=_wanted):
            book.restore(envelope.event)
            count += 1
        return count, until

    count, positions = await asyncio.to_thread(from_wal)
    feed = LiveFeed(bus, streams, positions, source="binance", wanted=_wanted)
    await feed.start()   # reads what JetStream holds beyond the WAL before anything live
    try:
        for envelope in feed.drain(1_000_000):
            book.restore(envelope.event)
            count += 1
    finally:
        await feed.stop()
    return count


__all__ = ["restore_book"]
