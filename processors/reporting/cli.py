"""`sq report`: return analytics and tear sheets from CSV files or the WAL, without a running stack."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from events.commands import run_subcommands
from processors.reporting import metrics
from processors.reporting._commands import register_wal_reports
from processors.reporting.report import align, metrics_report
from processors.reporting.series_io import InvalidCsv, read_returns_csv

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _error(command: str, message: str) -> int:
    """Print a one-line error for `command` and return the bad-input exit code."""
    print(f"sq report {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_metrics(args: argparse.Namespace) -> int:
    """`sq report metrics`: print every metric of a return series (and against a benchmark)."""
    if args.periods_per_year <= 0:
        return _error("metrics", f"--periods-per-year {args.periods_per_year} must be above 0")
    try:
        dates, returns = read_returns_csv(args.returns)
        bench = None
        if args.benchmark:
            bench_dates, bench_values = read_returns_csv(args.benchmark)
            dates, returns, bench = align(dates, returns, bench_dates, bench_values)
        report = metrics_report(dates, returns, bench, risk_free=args.risk_free,
                                periods_per_year=args.periods_per_year)
    except (InvalidCsv, metrics.InvalidSeries) as exc:
        return _error("metrics", str(exc))
    except OSError as exc:
        return _error("metrics", f"cannot read {exc.filename}: {exc.strerror}")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:28} {value:.6g}" if isinstance(value, float) else f"{key:28} {value}")
    return EXIT_OK


def cmd_tearsheet(args: argparse.Namespace) -> int:
    """`sq report tearsheet`: write a self-contained HTML tear sheet."""
    from processors.reporting.tearsheet import (
        run_tearsheet_command,  # keeps `metrics` free of the plotting code
    )

    return run_tearsheet_command(args, _error)


def register(subparsers: Any) -> None:
    """Add `report metrics|tearsheet|audit|blotter|tca|daily|orders` to an argparse subparsers object (the `sq` CLI calls this)."""
    report = subparsers.add_parser("report", help="performance analytics and tear sheets")
    tools = report.add_subparsers(dest="report_command", required=True)

    m = tools.add_parser("metrics", help="every return metric of a CSV of date,return")
    m.add_argument("--returns", required=True, help="CSV with a date column and a return column")
    m.add_argument("--benchmark", help="CSV of date,return for alpha, beta, tracking error, information ratio")
    m.add_argument("--periods-per-year", type=float, default=metrics.PERIODS_PER_YEAR,
                   help="periods in a year (default 252 trading days)")
    m.add_argument("--risk-free", type=float, default=0.0, help="risk-free rate per period (default 0)")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=cmd_metrics)

    t = tools.add_parser("tearsheet", help="self-contained HTML tear sheet (opens offline)")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--returns", help="CSV with a date column and a return column")
    source.add_argument("--account", help="account whose P&L to read from the WAL")
    t.add_argument("--data-dir", default="data", help="data directory holding wal/ (with --account)")
    t.add_argument("--capital", type=float, default=None,
                   help="starting capital for returns from P&L (with --account; default: gross exposure peak)")
    t.add_argument("--benchmark", help="CSV of date,return")
    t.add_argument("--periods-per-year", type=float, default=metrics.PERIODS_PER_YEAR)
    t.add_argument("--risk-free", type=float, default=0.0)
    t.add_argument("--title", default=None)
    t.add_argument("--out", required=True, help="HTML file to write")
    t.set_defaults(func=cmd_tearsheet)

    register_wal_reports(tools, _error)


def main(argv: list[str] | None = None) -> int:
    """Run `report ...` standalone: `python -m processors.reporting.cli report metrics --returns FILE`."""
    return run_subcommands(register, argv)



if __name__ == "__main__":
    sys.exit(main())
