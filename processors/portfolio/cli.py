"""`sq portfolio optimize`: weights from a CSV of prices, without a running stack."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import msgspec

from events.commands import run_subcommands
from processors.portfolio._qp import QpFailed
from processors.portfolio.optimize import METHODS, InvalidOptimization, optimize
from processors.reporting.series_io import InvalidCsv, read_prices_csv

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NO_SOLUTION = 3


class InvalidBounds(ValueError):
    """`--bounds` is not LO,HI; the text and why are attributes."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"--bounds {value!r} {reason}")
        self.value = value
        self.reason = reason


def parse_bounds(text: str) -> tuple[float, float]:
    """`LO,HI` as two floats (`-inf`/`inf` allowed for an open side)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise InvalidBounds(text, "must be LO,HI, e.g. 0,0.25 or -0.1,0.3")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidBounds(text, "must hold two numbers LO,HI") from None
    if math.isnan(lo) or math.isnan(hi):
        raise InvalidBounds(text, "must not be NaN")
    return lo, hi


def _error(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print a one-line error and return `code`."""
    print(f"sq portfolio optimize: error: {message}", file=sys.stderr)
    return code


def cmd_optimize(args: argparse.Namespace) -> int:
    """`sq portfolio optimize`: print weights, the estimates used and the portfolio's figures."""
    try:
        bounds = parse_bounds(args.bounds)
        _, assets, prices = read_prices_csv(args.prices)
        result = optimize(args.method, assets, prices, risk_free=args.risk_free, bounds=bounds,
                          shrinkage=args.shrinkage)
    except (InvalidBounds, InvalidCsv, InvalidOptimization) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot read {exc.filename}: {exc.strerror}")
    except QpFailed as exc:
        return _error(str(exc), EXIT_NO_SOLUTION)
    report: dict[str, Any] = msgspec.to_builtins(result)
    report["weights"] = dict(zip(result.assets, result.weights, strict=True))
    report["expected_returns"] = dict(zip(result.assets, result.expected_returns, strict=True))
    report["estimators"] = {"expected_returns": "compounded mean historical return, 252 periods a year",
                            "covariance": "ledoit-wolf" if args.shrinkage else "sample (ddof=1) x 252"}
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False) if math.isfinite(result.sharpe)
              else json.dumps({**report, "sharpe": None}, indent=2))
    else:
        for asset, weight in report["weights"].items():
            print(f"{asset:12} {weight:10.6f}")
        print(f"expected return {result.expected_return:.6f}  volatility {result.volatility:.6f}  "
              f"sharpe {result.sharpe:.4f}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `portfolio optimize` to an argparse subparsers object (the `sq` CLI calls this)."""
    portfolio = subparsers.add_parser("portfolio", help="portfolio construction tools")
    tools = portfolio.add_subparsers(dest="portfolio_command", required=True)
    o = tools.add_parser("optimize", help="weights from a CSV of date and one close column per asset")
    o.add_argument("--prices", required=True, help="CSV: date, then one price column per asset")
    o.add_argument("--method", required=True, choices=METHODS)
    o.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate for Sharpe (default 0)")
    o.add_argument("--bounds", default="0,1", help="LO,HI per weight (default 0,1: long only)")
    o.add_argument("--shrinkage", action="store_true", help="Ledoit-Wolf covariance instead of the sample one")
    o.add_argument("--json", action="store_true", help="print JSON instead of a table")
    o.set_defaults(func=cmd_optimize)


def main(argv: list[str] | None = None) -> int:
    """Run `portfolio ...` standalone: `python -m processors.portfolio.cli portfolio optimize ...`."""
    return run_subcommands(register, argv)



if __name__ == "__main__":
    sys.exit(main())
