"""`sq report`: return analytics and tear sheets from CSV files or the WAL, without a running stack.

It reads the projections folded over the WAL (`projections.blotter`) beside the analytics library
(`processors.reporting`), so it sits in the gateway layer with the rest of the `sq` command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from events.commands import run_subcommands
from gateway.report_commands import register_wal_reports
from processors.reporting import metrics
from processors.reporting.report import align, metrics_report
from processors.reporting.series_io import InvalidCsv, csv_header, read_column_csv, read_returns_csv

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
    """`sq report tearsheet`: read returns (CSV, or the account's P&L from the WAL), render, write the HTML file."""
    import numpy as np

    # Imported here, so `sq report metrics` does not load the plotting code.
    from processors.reporting.tearsheet import render, returns_from_pnl

    try:
        exposure = None
        if args.returns:
            dates, returns = read_returns_csv(args.returns)
            if "exposure" in csv_header(args.returns):
                exposure = read_column_csv(args.returns, "exposure")[1]
            source = f"Source: {Path(args.returns).name}."
        else:
            if args.capital is None:
                return _error("tearsheet", "--capital is required with --account (returns are P&L / capital)")
            from projections.blotter import NoPnl, pnl_from_wal  # the store, needed by this path only

            try:
                points = pnl_from_wal(Path(args.data_dir), args.account)
            except NoPnl as exc:
                return _error("tearsheet", str(exc))
            dates, returns = returns_from_pnl(points, args.capital)
            source = f"Account {args.account}, daily net P&L on capital {args.capital:g}, from the WAL."
        benchmark = None
        if args.benchmark:
            bench_dates, bench_values = read_returns_csv(args.benchmark)
            kept, returns_aligned, benchmark = align(dates, returns, bench_dates, bench_values)
            if exposure is not None:
                at = {date: i for i, date in enumerate(dates)}
                exposure = np.array([exposure[at[d]] for d in kept])
            dates, returns = kept, returns_aligned
        page = render(dates, returns, benchmark=benchmark, exposure=exposure, title=args.title or "Tear sheet",
                      risk_free=args.risk_free, periods_per_year=args.periods_per_year, source=source)
    except (InvalidCsv, metrics.InvalidSeries) as exc:
        return _error("tearsheet", str(exc))
    except OSError as exc:
        return _error("tearsheet", f"cannot read {exc.filename}: {exc.strerror}")
    Path(args.out).write_text(page, encoding="utf-8")
    print(args.out)
    return EXIT_OK


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
    """Run `report ...` standalone: `python -m gateway.report_cli report metrics --returns FILE`."""
    return run_subcommands(register, argv)


if __name__ == "__main__":
    sys.exit(main())
