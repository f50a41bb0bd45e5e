"""The router runner's timer: ticks are events with ids derived from the timer and due time.

The runners themselves run on the shared processor host; tests/pipeline drives them end to end.
"""

from __future__ import annotations

import asyncio

from events import Bus, TimerFired, decode
from processors.router.runner import ticker, timer_event
from tests.conftest import eventually


def test_timer_event_when_published_twice_then_same_id() -> None:
    assert timer_event("router", 5_000_000_000) == timer_event("router", 5_000_000_000)
    assert timer_event("router", 5_000_000_000).id != timer_event("router", 6_000_000_000).id


async def test_ticker_publishes_timers_due_at_whole_multiples_of_its_period(bus: Bus) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(ticker("t", 50_000_000)(bus, stop))

    async def count() -> int:
        return int((await bus.js.stream_info("SQ_TRADING")).state.messages)

    await eventually(lambda: _at_least(count(), 3), message="three ticks")
    stop.set()
    await task
    timers = [decode((await bus.js.get_msg("SQ_TRADING", seq)).data or b"") for seq in (1, 2, 3)]
    assert all(isinstance(t, TimerFired) and t.due_ts % 50_000_000 == 0 for t in timers)
    dues = [t.due_ts for t in timers if isinstance(t, TimerFired)]
    assert dues == sorted(dues) and len(set(dues)) == 3


async def _at_least(value, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await value >= expected
