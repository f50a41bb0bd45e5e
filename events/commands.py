"""Running one part's `sq` subcommands on their own, without the whole parser (subprocess tests, slim installs)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

Register = Callable[[Any], None]


def run_subcommands(register: Register, argv: Sequence[str] | None = None) -> int:
    """Build a parser holding only what `register` adds, parse `argv`, run the chosen command's `func`."""
    parser = argparse.ArgumentParser(prog="sq")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
