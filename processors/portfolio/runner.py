"""`sq processor portfolio`: the portfolio core as a service over the trading and market-data streams."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec

from events.subjects import STREAM_MD, STREAM_TRADING, subscribed
from processors.portfolio.core import (
    STATE_VERSION,
    SUBSCRIPTIONS,
    PortfolioConfig,
    PortfolioState,
    decide,
    evolve,
)
from processors.runtime import add_common_arguments, run_core

DEFAULT_PORT = 50055


class InvalidPortfolioConfig(ValueError):
    """The config file is unreadable or has bad fields; `path` and `problems` are attributes."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def load_config(path: str | None) -> PortfolioConfig:
    """The portfolio config from a JSON file (unknown fields are errors), or the defaults."""
    if path is None:
        return PortfolioConfig()
    try:
        config = msgspec.json.decode(Path(path).read_bytes(), type=PortfolioConfig)
    except msgspec.ValidationError as exc:
        raise InvalidPortfolioConfig(path, [str(exc)]) from None
    problems = config.validate()
    if problems:
        raise InvalidPortfolioConfig(path, problems)
    return config


_wanted = subscribed(SUBSCRIPTIONS)       # what the core reads, as a predicate (offline replays, tools)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor portfolio`."""
    add_common_arguments(parser, default_port=DEFAULT_PORT)
    parser.add_argument("--config", default=None, help="portfolio config (.json): capital per account, rebalance "
                                                       "rules; default: no capital, 1%% drift threshold")


def main(args: argparse.Namespace) -> int:
    """Run the portfolio manager until SIGINT/SIGTERM."""
    state = PortfolioState(load_config(args.config))
    return asyncio.run(run_core("portfolio", args, state_version=STATE_VERSION, streams=(STREAM_TRADING.name, STREAM_MD.name), state=state,
                                decide=decide, evolve=evolve, subscriptions=SUBSCRIPTIONS))
