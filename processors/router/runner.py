"""`sq processor router`: route accepted intents into child orders; publish TCA; tick timers.

Reads intents, cancels, risk decisions, its own children, venue reports, kill switches and timers
(SQ_TRADING) and trades, book tops and bars (SQ_MD). Publishes ChildOrder / ChildCancel on
`sq.exec.child.<venue>.<account>`, each parent's ParentOrderScheduled on `sq.exec.parent.<account>`
and ParentOrderCompleted on `sq.exec.tca.<account>`.

It also publishes a TimerFired on `sq.ctl.timer.<name>` every `--timer-ms`, due at whole
multiples of the interval, with an id derived from the timer name and due time — so replicas and
restarts publish the same ids (JetStream drops the copies), and the core consumes the timers from
the bus like any other event, which is what lets a replay reproduce every slice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from events.bus import Bus
from events.control import TimerFired
from events.ids import derived_id
from events.subjects import STREAM_MD, STREAM_TRADING, subscribed
from processors.router.config import InvalidConfig, load_router_config
from processors.router.core import STATE_VERSION, SUBSCRIPTIONS, decide, evolve
from processors.router.state import RouterState
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50054
wanted = subscribed(SUBSCRIPTIONS)        # what the core reads, as a predicate (offline replays, tools)


def timer_event(name: str, due_ns: int) -> TimerFired:
    """The tick of timer `name` due at `due_ns`: the same inputs always give the same event."""
    return TimerFired(id=derived_id(f"timer:{name}", "timer", due_ns), ts=due_ns, timer=name, due_ts=due_ns)


def ticker(name: str, every_ns: int) -> Callable[[Bus, asyncio.Event], Coroutine[Any, Any, None]]:
    """A companion task publishing a TimerFired at every whole multiple of `every_ns` until stopped."""

    async def tick(bus: Bus, stopping: asyncio.Event) -> None:
        due = (time.time_ns() // every_ns + 1) * every_ns
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(0.0, (due - time.time_ns()) / 1e9))
            if stopping.is_set():
                return
            await bus.publish(timer_event(name, due))
            due += every_ns

    return tick


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor router`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--config", required=True, help="execution config (.toml or .json): venues, router")
    parser.add_argument("--timer", default="router", help="name of the TimerFired this router publishes")
    parser.add_argument("--timer-ms", type=int, default=1000, help="timer period; 0 publishes no timer")


def main(args: argparse.Namespace) -> int:
    """Load the execution config and route until SIGINT/SIGTERM; exit 2 naming every bad field."""
    try:
        config = load_router_config(args.config)
    except (InvalidConfig, OSError) as exc:
        print(f"router: {exc}", file=sys.stderr)
        return 2
    companions = [ticker(args.timer, args.timer_ms * 1_000_000)] if args.timer_ms > 0 else []
    return asyncio.run(run_core("router", args, state_version=STATE_VERSION, streams=(STREAM_TRADING.name, STREAM_MD.name),
                                state=RouterState(config), decide=decide, evolve=evolve, apply_outputs=True,
                                subscriptions=SUBSCRIPTIONS, companions=companions))
