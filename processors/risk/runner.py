"""`sq processor risk`: the risk core as a service over the trading and market-data streams."""

from __future__ import annotations

import argparse
import asyncio

from events.subjects import STREAM_MD, STREAM_TRADING
from processors.risk.config import LimitsFile, load_limits
from processors.risk.core import decide, evolve
from processors.risk.state import RiskState
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50053


def _wanted(subject: str) -> bool:
    # Risk needs trades and book tops for collars and marks, not depth updates or bars.
    return not subject.startswith(("sq.md.book.", "sq.md.bar."))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor risk`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--limits", default=None, help="limits file (.json or .toml); default: no limits set")


def main(args: argparse.Namespace) -> int:
    """Run the risk manager until SIGINT/SIGTERM."""
    limits = load_limits(args.limits) if args.limits else LimitsFile()
    return asyncio.run(run_core("risk", args, streams=(STREAM_TRADING.name, STREAM_MD.name),
                                state=RiskState(limits), decide=decide, evolve=evolve, apply_outputs=True,
                                wanted=_wanted))
