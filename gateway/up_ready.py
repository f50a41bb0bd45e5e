"""`sq up`'s "ready means tradable": which demo markets must be live, and the wait before the banner.

The banner says the stack is up only once the gateway's /readyz would answer 200 with the demo's
markets and every processor named: each replayed symbol has a two-sided book top, each symbol the
recording trades has a last trade, and every processor's /readyz answers 200. A MARKET order sent
at that moment has a reference price for risk and liquidity at the simulated venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from events.market import BookSnapshot, BookTop, Trade
from gateway.readiness import readiness
from gateway.state import Gateway, Market
from processors.connector.recordings import Record, read_bytes, read_records

POLL_S = 0.25
REPORT_EVERY_S = 5.0


def demo_markets(paths: Iterable[Path]) -> tuple[tuple[Market, ...], tuple[Market, ...]]:
    """The (venue, symbol) pairs the recordings give a book, and those they give a trade, in first-seen order."""
    books: dict[Market, None] = {}
    trades: dict[Market, None] = {}
    for path in paths:
        for item in read_records(read_bytes(path), name=path.name):
            if not isinstance(item, Record):
                continue
            match item.event:
                case BookSnapshot(venue=venue, symbol=symbol) | BookTop(venue=venue, symbol=symbol):
                    books[(venue, symbol)] = None
                case Trade(venue=venue, symbol=symbol):
                    trades[(venue, symbol)] = None
    return tuple(books), tuple(trades)


def describe_waiting(answer: dict[str, Any]) -> str:
    """One line naming what a not-ready /readyz answer still waits for."""
    waiting = answer.get("waiting_for", {})
    parts = [f"{label} {', '.join(waiting[key])}" for key, label in
             (("checks", "gateway"), ("services", "services"), ("book", "a book for"),
              ("last_trade", "a last trade for")) if waiting.get(key)]
    return "; ".join(parts) or "nothing"


async def wait_until_tradable(gateway: Gateway, stop: asyncio.Event,
                              say: Callable[[str], None] = print) -> bool:
    """Poll the gateway's readiness until ready (True) or until `stop` is set (False), saying what it waits for."""
    said = time.monotonic()
    while not stop.is_set():
        answer = await readiness(gateway)
        if answer["ready"]:
            return True
        if time.monotonic() - said >= REPORT_EVERY_S:
            say(f"sq up: waiting for {describe_waiting(answer)}")
            said = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    return False


__all__ = ["demo_markets", "describe_waiting", "wait_until_tradable"]
