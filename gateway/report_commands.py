"""`sq report audit|blotter|tca|daily|orders`: the WAL-backed reports on the command line (no running stack needed).

Blotter, TCA and the daily report fold the WAL into the projections (`projections.blotter`), so these
commands live in the gateway layer; the audit trail and the order records read the WAL directly
(`processors.reporting.audit`, `processors.reporting.orders`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Error = Callable[[str, str], int]


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as a fixed-width text table (None shown as '-')."""
    cells = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


BLOTTER_COLUMNS = ["time", "account", "order_id", "algo", "symbol", "side", "quantity", "price", "fee", "venue",
                   "liquidity"]
TCA_COLUMNS = ["algo", "venue", "orders", "filled_quantity", "notional", "fees", "avg_shortfall_bps",
               "weighted_shortfall_bps", "avg_vwap_slippage_bps", "weighted_vwap_slippage_bps"]


def cmd_audit(args: argparse.Namespace, error: Error) -> int:
    """`sq report audit ORDER_ID`: the order's causal history with WAL positions and seals."""
    from processors.reporting.audit import OrderNotInWal, audit_order, render_text

    try:
        trail = audit_order(Path(args.data_dir), args.order_id)
    except OrderNotInWal as exc:
        return error("audit", str(exc))
    print(json.dumps(trail.as_json(), indent=2) if args.json else render_text(trail))
    return 0


def cmd_wal_report(args: argparse.Namespace, error: Error) -> int:
    """`sq report blotter|tca|daily`: fold the WAL, then print one report."""
    from projections.blotter import (
        InvalidDate,
        blotter,
        daily_report,
        day_books,
        day_bounds,
        load_inputs,
        tca_summary,
    )

    command = args.report_command
    accounts = [args.account] if args.account else None
    try:
        window = day_bounds(args.date) if args.date else None
    except InvalidDate as exc:
        return error(command, str(exc))
    if command == "daily" and args.date is None:
        return error(command, "--date YYYY-MM-DD is required")
    if not (Path(args.data_dir) / "wal").is_dir():
        return error(command, f"no WAL directory under {args.data_dir}")
    inputs = load_inputs(Path(args.data_dir))
    if command == "blotter":
        rows = blotter(inputs, accounts=accounts, window=window)
        print(json.dumps({"fills": rows}, indent=2) if args.json else _table(rows, BLOTTER_COLUMNS))
    elif command == "tca":
        rows = tca_summary(inputs, accounts=accounts, window=window)
        print(json.dumps({"tca": rows}, indent=2) if args.json else _table(rows, TCA_COLUMNS))
    else:
        books = day_books(Path(args.data_dir) / "wal", args.date,
                          ladder_dir=Path(args.data_dir) / "projections" / "ladder")
        report = daily_report(inputs, args.date, books, accounts=accounts)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"Daily report {report['date']} (UTC)")
            for account in report["accounts"]:
                figures = {k: v for k, v in account.items() if k not in ("tca", "symbols")}
                print("\n" + "  ".join(f"{k} {v}" for k, v in figures.items()))
                print(f"symbols {', '.join(account['symbols']) or '-'}")
                if account["tca"]:
                    print(_table(account["tca"], TCA_COLUMNS))
    return 0


def cmd_orders(args: argparse.Namespace, error: Error) -> int:
    """`sq report orders`: the RTS 24 order record of every order event in the WAL, as CSV or Parquet."""
    from processors.reporting.orders import (
        InvalidWindow,
        OrderRecords,
        order_records,
        parse_instant,
        write_csv,
        write_parquet,
    )

    if args.format == "parquet" and args.out is None:
        return error("orders", "--format parquet needs --out FILE")
    try:
        start = parse_instant(args.start) if args.start else None
        end = parse_instant(args.end) if args.end else None
    except InvalidWindow as exc:
        return error("orders", str(exc))
    if start is not None and end is not None and end <= start:
        return error("orders", f"--to {args.end} is not after --from {args.start}")
    if not (Path(args.data_dir) / "wal").is_dir():
        return error("orders", f"no WAL directory under {args.data_dir}")
    fold = OrderRecords(entity_id=args.entity_id, trading_capacity=args.trading_capacity)
    rows = order_records(Path(args.data_dir), from_ts=start, to_ts=end,
                         accounts={args.account} if args.account else None, fold=fold)
    if args.format == "parquet":
        count = write_parquet(rows, Path(args.out))
    elif args.out is None:
        count = write_csv(rows, sys.stdout)
    else:
        with Path(args.out).open("w", encoding="utf-8", newline="") as out:
            count = write_csv(rows, out)
    # The count goes to stderr so stdout stays a clean CSV; skipped records are never silent.
    print(f"sq report orders: {count} order events written; {fold.undecodable} undecodable records skipped",
          file=sys.stderr)
    return 0


def register_wal_reports(tools: Any, error: Error) -> None:
    """Add audit, blotter, tca, daily and orders to the `report` subcommands."""
    o = tools.add_parser("orders", help="the order record (MiFID II RTS 24 fields) of every order event in the WAL")
    o.add_argument("--data-dir", default="data", help="data directory holding wal/")
    o.add_argument("--from", dest="start", help="first event time, ISO-8601 date or time, UTC (default: the start)")
    o.add_argument("--to", dest="end", help="end of the window, exclusive, ISO-8601 date or time (default: the end)")
    o.add_argument("--format", choices=("csv", "parquet"), default="csv", help="csv (default) or parquet")
    o.add_argument("--out", default=None, help="file to write (default for csv: stdout; required for parquet)")
    o.add_argument("--account", help="only this account")
    o.add_argument("--entity-id", default=None, help="the firm's LEI, for the entity_id column")
    o.add_argument("--trading-capacity", choices=("DEAL", "MTCH", "AOTC"), default=None,
                   help="the firm's trading capacity, for the trading_capacity column (not held in the events)")
    o.set_defaults(func=lambda args: cmd_orders(args, error))
    a = tools.add_parser("audit", help="an order's full causal history from the WAL, with positions and seals")
    a.add_argument("order_id")
    a.add_argument("--data-dir", default="data", help="data directory holding wal/")
    a.add_argument("--json", action="store_true", help="print JSON instead of text")
    a.set_defaults(func=lambda args: cmd_audit(args, error))
    helps = {"blotter": "every fill: order, side, quantity, price, fee, venue, liquidity, time",
             "tca": "transaction cost per algorithm and venue from completed parent orders",
             "daily": "per account for a UTC day: fills, turnover, P&L, fees, TCA"}
    for name, text in helps.items():
        p = tools.add_parser(name, help=text)
        p.add_argument("--data-dir", default="data", help="data directory holding wal/")
        p.add_argument("--account", help="only this account")
        p.add_argument("--date", help="only this UTC day, YYYY-MM-DD" + (" (required)" if name == "daily" else ""))
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.set_defaults(func=lambda args: cmd_wal_report(args, error))
