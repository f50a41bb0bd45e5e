"""`sq md`: offline market-data tools — candles and book tops from any recorded file, as JSON lines.

Exit codes: 0 everything read and applied; 1 nothing usable (no trades, no snapshot, unknown
format); 2 bad arguments; 3 output was produced but some lines were refused or the book hit a
gap or a cross (details on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from events.commands import run_subcommands
from events.market import Bar, BookDelta, BookSnapshot, Trade
from processors.aggregator.book import L2Book, Status, top_of_book
from processors.aggregator.book_events import from_scaled, to_scaled
from processors.aggregator.candles import candles_batch
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.connector.recordings import (
    FORMATS,
    BadRecord,
    Item,
    Record,
    interval_ns,
    read_bytes,
    read_records,
)

_encoder = msgspec.json.Encoder()


def _emit(row: dict[str, Any]) -> None:
    sys.stdout.write(_encoder.encode(row).decode() + "\n")


def _warn(message: str) -> None:
    print(f"sq md: {message}", file=sys.stderr)


def _items(path: str, args: argparse.Namespace) -> Iterable[Item]:
    return read_records(read_bytes(path), name=path, fmt=args.format, venue=args.venue, symbol=args.symbol)


def _scale(values: Iterable[Decimal]) -> int:
    """Decimals needed to hold every value exactly (at least 8, Binance's)."""
    places = 8
    for value in values:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int):
            places = max(places, -exponent)
    return places


def _split(items: Iterable[Item], symbol: str | None) -> tuple[list[Any], int]:
    events, bad = [], 0
    for item in items:
        if isinstance(item, BadRecord):
            bad += 1
            _warn(f"line {item.line} refused: {item.reason}")
        elif isinstance(item, Record) and (symbol is None or getattr(item.event, "symbol", None) == symbol):
            events.append(item.event)
    return events, bad


def _single_symbol(events: list[Any]) -> bool:
    symbols = sorted({e.symbol for e in events})
    if len(symbols) > 1:
        _warn(f"the file holds several symbols ({', '.join(symbols)}): pick one with --symbol")
        return False
    return True


def cmd_candles(args: argparse.Namespace) -> int:
    """Print candles from the trades (or, for kline files, the bars) in FILE as JSON lines."""
    try:
        step = interval_ns(args.interval)
        events, bad = _split(_items(args.file, args), args.symbol)
    except ValueError as exc:
        _warn(str(exc))
        return 1
    trades = [e for e in events if isinstance(e, Trade)]
    bars = [e for e in events if isinstance(e, Bar)]
    if not (trades or bars) or not _single_symbol(trades or bars):
        if not (trades or bars):
            _warn(f"{args.file} holds no trades or bars")
        return 1
    if trades:
        scale = _scale(v for t in trades for v in (t.price, t.quantity))
        ts = np.array([t.ts for t in trades], np.int64)
        prices = np.array([to_scaled(t.price, scale) for t in trades], np.int64)
        sizes = np.array([to_scaled(t.quantity, scale) for t in trades], np.int64)
    else:
        # Kline files: re-aggregate bars, each standing in for its open, high, low and close.
        if any(step % interval_ns(b.interval) for b in bars):
            _warn(f"interval {args.interval} is not a multiple of the file's bar interval {bars[0].interval}")
            return 1
        scale = _scale(v for b in bars for v in (b.open, b.high, b.low, b.close, b.volume))
        order = [(b.open_time + k, p, b.volume if k == 3 else Decimal(0))
                 for b in bars for k, p in enumerate((b.open, b.high, b.low, b.close))]
        ts = np.array([o[0] for o in order], np.int64)
        prices = np.array([to_scaled(o[1], scale) for o in order], np.int64)
        sizes = np.array([to_scaled(o[2], scale) for o in order], np.int64)
    out = candles_batch(ts, prices, sizes, step)
    for i in range(len(out)):
        _emit({"open_time": int(out.open_time[i]) // 1_000_000,
               **{name: str(from_scaled(int(getattr(out, name)[i]), scale))
                  for name in ("open", "high", "low", "close", "volume")}})
    return 3 if bad else 0


def cmd_book(args: argparse.Namespace) -> int:
    """Print the book top after every applied update of --symbol as JSON lines."""
    try:
        events, bad = _split(_items(args.file, args), args.symbol)
        if args.snapshot:
            snaps, bad_snaps = _split(_items(args.snapshot, args), args.symbol)
            events = [e for e in snaps if isinstance(e, BookSnapshot)][:1] + events
            bad += bad_snaps
    except ValueError as exc:
        _warn(str(exc))
        return 1
    book_events = [e for e in events if isinstance(e, BookSnapshot | BookDelta)]
    if not any(isinstance(e, BookSnapshot) for e in book_events):
        _warn(f"no depth snapshot for {args.symbol}: pass --snapshot FILE (a REST depth recording)")
        return 1
    scale = _scale(v for e in book_events for side in (e.bids, e.asks) for level in side for v in level)
    sync = BookSync(book=L2Book(price_scale=scale, size_scale=scale))
    troubles = 0
    for event in book_events:
        result = on_snapshot(sync, event) if isinstance(event, BookSnapshot) else on_delta(sync, event)
        if result.status in (Status.GAP, Status.CROSSED):
            troubles += 1
            _warn(f"{result.status.value} at update {result.last_update_id}: {result.reason}; waiting for a snapshot")
        if result.status is not Status.APPLIED:
            continue
        top = top_of_book(sync.book)
        _emit({"last_update_id": top.last_update_id,
               **{name: None if value is None else str(from_scaled(value, scale))
                  for name, value in (("bid_price", top.bid_price), ("bid_size", top.bid_size),
                                      ("ask_price", top.ask_price), ("ask_size", top.ask_size))}})
    if sync.buffer:
        _warn(f"{len(sync.buffer)} updates after the last gap were never applied (no later snapshot)")
    return 3 if bad or troubles else 0


def register(subparsers: Any) -> None:
    """Add `md candles` and `md book` to an argparse subparsers object (the `sq` CLI calls this)."""
    md = subparsers.add_parser("md", help="offline market-data tools: candles and book tops from recordings")
    tools = md.add_subparsers(dest="md_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--format", choices=FORMATS, help="recording format (detected when omitted)")
    common.add_argument("--venue", help="venue token for files that do not say")

    candles = tools.add_parser("candles", parents=[common], help="candles from a recording, as JSON lines")
    candles.add_argument("file", help="recorded file, or - for stdin")
    candles.add_argument("--interval", default="1m", help="1s .. 1d (default 1m)")
    candles.add_argument("--symbol", help="symbol to use when the file holds several")
    candles.set_defaults(func=cmd_candles)

    book = tools.add_parser("book", parents=[common], help="book top after every applied update, as JSON lines")
    book.add_argument("file", help="recorded diffs (and/or snapshots), or - for stdin")
    book.add_argument("--snapshot", help="a recorded REST depth snapshot file")
    book.add_argument("--symbol", required=True)
    book.set_defaults(func=cmd_book)


def main(argv: list[str] | None = None) -> int:
    """Run `md ...` standalone: `python -m processors.marketdata_cli md candles FILE`."""
    return run_subcommands(register, argv)



if __name__ == "__main__":
    sys.exit(main())
