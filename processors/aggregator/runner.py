"""`sq processor aggregator`: consume sq.md trades and book updates, publish bars and book tops.

It runs on the shared processor host: state is rebuilt from the SQ_MD WAL, then the stream is
followed live; bars and tops are derived with deterministic ids, so a restart republishes nothing
new. Its own outputs (bars, tops) come back on SQ_MD and are ignored by the core.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import msgspec

from events._base import Event
from events.codec import AnyEvent
from events.subjects import STREAM_MD, subscribed
from processors.aggregator.config import AggregatorConfig, ConfigError
from processors.aggregator.core import STATE_VERSION, SUBSCRIPTIONS, AggregatorState, handle, initial_state
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50057
wanted = subscribed(SUBSCRIPTIONS)        # what the core reads, as a predicate (offline replays, tools)


def decide(state: AggregatorState, event: AnyEvent) -> list[Event]:
    """The core's outputs for one event (the core updates its books and bars in place)."""
    return handle(state, event)


def evolve(state: AggregatorState, event: AnyEvent) -> AggregatorState:
    """Nothing more to do: `handle` already folded the event in."""
    return state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor aggregator`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--intervals", default="1m", help="bar intervals, comma-separated, e.g. 1s,1m,1h")
    parser.add_argument("--top-every-ms", type=int, default=0,
                        help="at most one BookTop per symbol per this many ms of event time (0: every update)")
    parser.add_argument("--summary-every-ms", type=int, default=50,
                        help="at most one TradeSummary per symbol per this many ms of event time (0: one per trade)")


def main(args: argparse.Namespace) -> int:
    """Validate the options and aggregate until SIGINT/SIGTERM; exit 2 naming every bad field."""
    try:
        config = msgspec.convert({"intervals": tuple(args.intervals.split(",")), "top_every_ms": args.top_every_ms,
                                  "summary_every_ms": args.summary_every_ms},
                                 AggregatorConfig).validate()
    except (msgspec.ValidationError, ConfigError) as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 2
    state: Any = initial_state(config)
    return asyncio.run(run_core("aggregator", args, state_version=STATE_VERSION, streams=(STREAM_MD.name,), state=state, decide=decide,
                                evolve=evolve, subscriptions=SUBSCRIPTIONS))
