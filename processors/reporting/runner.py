"""`sq processor reporting`: a real-time trade report on `sq.rpt.trade.<account>` for every fill.

Reads intents, risk decisions, execution reports and parent completions (SQ_TRADING) and publishes
one TradeReported per fill (README, "Reporting"). Serves /healthz, /readyz and /metrics on 50056.
"""

from __future__ import annotations

import argparse
import asyncio

from prometheus_client import Counter, Histogram

from events._base import Event
from events.codec import AnyEvent
from events.subjects import STREAM_TRADING, subscribed
from events.trading import TradeReported
from processors.reporting.core import STATE_VERSION, SUBSCRIPTIONS, ReportingState, decide, evolve
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50056
REPORTS = Counter("sq_reporting_trade_reports_total", "Trade reports published, by venue", ["venue"])
# From the venue's execution time to the report's publication time as the report states them: a
# live venue's clock against ours, so this shows how late fills reach the report (0 for the sim).
REPORT_DELAY = Histogram("sq_reporting_trade_report_delay_seconds",
                         "Publication time minus execution time stated in each trade report",
                         buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60))
wanted = subscribed(SUBSCRIPTIONS)        # what the core reads, as a predicate (offline replays, tools)


def observe(state: ReportingState, inputs: list[AnyEvent], outputs: list[Event]) -> None:
    """Count live trade reports and how late after execution each was made."""
    for output in outputs:
        if isinstance(output, TradeReported):
            REPORTS.labels(output.venue).inc()
            REPORT_DELAY.observe(max(0, output.publication_ts - output.execution_ts) / 1e9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor reporting`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)


def main(args: argparse.Namespace) -> int:
    """Report every fill until SIGINT/SIGTERM."""
    return asyncio.run(run_core("reporting", args, state_version=STATE_VERSION, streams=(STREAM_TRADING.name,),
                                state=ReportingState(), decide=decide, evolve=evolve,
                                subscriptions=SUBSCRIPTIONS, on_live=observe))
