"""`sq processor venue-sim`: simulated venues filling child orders against the recorded or live market.

Reads child orders and cancels (and its own reports, to rebuild) from SQ_TRADING and trades and
book snapshots/diffs from SQ_MD; publishes ExecutionReports on `sq.exec.report.<venue>.<account>`.
A child addressed to a venue this process does not simulate is ignored (another adapter serves it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from events.subjects import STREAM_MD, STREAM_TRADING, subscribed
from processors.runtime import add_common_arguments, run_core
from processors.venue_sim.config import InvalidConfig, load_sim_config
from processors.venue_sim.core import STATE_VERSION, SUBSCRIPTIONS, decide, evolve
from processors.venue_sim.state import SimState

DEFAULT_PORT = 50058
wanted = subscribed(SUBSCRIPTIONS)        # what the core reads, as a predicate (offline replays, tools)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor venue-sim`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--config", required=True, help="execution config (.toml or .json): venues, sim")


def main(args: argparse.Namespace) -> int:
    """Load the execution config and fill children until SIGINT/SIGTERM; exit 2 naming every bad field."""
    try:
        config = load_sim_config(args.config)
    except (InvalidConfig, OSError) as exc:
        print(f"venue-sim: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_core("venue-sim", args, state_version=STATE_VERSION, streams=(STREAM_TRADING.name, STREAM_MD.name),
                                state=SimState(config), decide=decide, evolve=evolve, apply_outputs=True,
                                subscriptions=SUBSCRIPTIONS))
