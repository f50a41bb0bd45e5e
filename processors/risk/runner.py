"""`sq processor risk`: the risk core as a service over the trading and market-data streams."""

from __future__ import annotations

import argparse
import asyncio

from prometheus_client import Counter, Gauge

from events._base import Event
from events.codec import AnyEvent
from events.control import KillSwitchEngaged, KillSwitchReleased
from events.subjects import STREAM_MD, STREAM_TRADING, subscribed
from events.trading import RiskDecision
from processors.risk.config import LimitsFile, load_limits
from processors.risk.core import STATE_VERSION, SUBSCRIPTIONS, decide, evolve
from processors.risk.state import RiskState
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50053
DECISIONS = Counter("sq_risk_decisions_total", "Risk decisions published, by outcome and first failed check",
                    ["accepted", "check"])
KILL_SWITCH = Gauge("sq_risk_kill_switch_engaged", "1 while a kill switch covers the account (all: global)",
                    ["account"])


# The kill-switch state last written to the gauges, per account ("all": global). A batch writes only the
# accounts its kill-switch events name (the first batch writes every account the catch-up left): a sweep
# of every account per batch cost risk a quarter of its CPU at a few hundred accounts.
_shown_kill: dict[str, bool] = {}


def _show_kill(account: str, killed: bool) -> None:
    if _shown_kill.get(account) is not killed:
        KILL_SWITCH.labels(account).set(1 if killed else 0)
        _shown_kill[account] = killed


def observe(state: RiskState, inputs: list[AnyEvent], outputs: list[Event]) -> None:
    """Count live decisions and mirror the kill-switch state into gauges (for alerts and dashboards)."""
    for output in outputs:
        if isinstance(output, RiskDecision):
            check = output.failures[0].check if output.failures else "none"
            DECISIONS.labels("true" if output.accepted else "false", check).inc()
    touched = state.accounts if not _shown_kill else {
        event.account for event in inputs
        if isinstance(event, KillSwitchEngaged | KillSwitchReleased) and event.account is not None}
    _show_kill("all", state.global_kill)
    for account in touched:
        own = state.accounts.get(account)
        _show_kill(account, own is not None and own.killed)


_wanted = subscribed(SUBSCRIPTIONS)       # what the core reads, as a predicate (offline replays, tools)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor risk`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--limits", default=None, help="limits file (.json or .toml); default: no limits set")


def main(args: argparse.Namespace) -> int:
    """Run the risk manager until SIGINT/SIGTERM."""
    limits = load_limits(args.limits) if args.limits else LimitsFile()
    return asyncio.run(run_core("risk", args, state_version=STATE_VERSION, streams=(STREAM_TRADING.name, STREAM_MD.name),
                                state=RiskState(limits), decide=decide, evolve=evolve, apply_outputs=True,
                                subscriptions=SUBSCRIPTIONS, on_live=observe))
