"""Readers for recorded market data in every format the project meets, yielding events or refused lines.

Formats (detected from the name and the first bytes, or named explicitly):

* `cryptofeed_http`: `URL -> unix_ts: {json}` lines of Binance REST depth snapshots;
* `cryptofeed_ws`: a `URL <-> ts` header, then `ts: {"stream": .., "data": ..}` lines;
* `freqtrade_trades`: a JSON array (optionally gzipped) of ccxt trade dicts whose `info` is the raw
  Binance aggTrade — the exact `info.p` / `info.q` strings are used, never ccxt's floats;
* `klines_json`: a JSON array of `[open_ms, o, h, l, c, volume]` rows (freqtrade);
* `klines_csv`: data.binance.vision kline CSV, 12 columns, no header;
* `jsonl`: one JSON object a line, either a Binance WS message as sent or a generic trade;
* `trades_csv` (with a header) and `parquet`: generic trades.

Generic trades have columns `ts`/`timestamp`/`time`/`T` (s, ms, us or ns, told apart by magnitude,
or exactly ns for `ts_ns`), `price`/`p`, `quantity`/`qty`/`amount`/`size`/`q`, and optionally
`side`, `symbol`, `venue`, `trade_id`/`id`/`a`. Files are read whole into memory.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import msgspec

from events._base import Event
from events.ids import derived_id
from events.market import Bar, Trade
from events.subjects import token
from processors.connector.binance.parse import VENUE_FUTURES, VENUE_SPOT, FeedError, parse_snapshot, parse_ws

Format = Literal["cryptofeed_http", "cryptofeed_ws", "freqtrade_trades", "klines_json", "klines_csv", "jsonl",
                 "trades_csv", "parquet"]
FORMATS: tuple[str, ...] = Format.__args__  # type: ignore[attr-defined]
NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_BAD = (FeedError, msgspec.DecodeError, msgspec.ValidationError, ValueError, ArithmeticError, KeyError,
        IndexError, TypeError)


@dataclass(frozen=True)
class Record:
    """An event read from a recording, with the time it was recorded at (for paced replay)."""

    line: int
    recorded_ns: int
    event: Event


@dataclass(frozen=True)
class BadRecord:
    """A line that could not be read, with the reason; it is dead-lettered, never dropped silently."""

    line: int
    raw: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    """A well-formed line that is not a fact yet (an in-progress kline); counted, not published."""

    line: int
    reason: str


Item = Record | BadRecord | Skipped


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes (`-` reads stdin), gunzipped when they are gzip."""
    data = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def detect_format(name: str, data: bytes) -> Format:
    """Guess the format from the file name and the first bytes; raise ValueError naming both when unsure."""
    head = data[:4096].lstrip()
    first_line = head.split(b"\n", 1)[0]
    if data[:4] == b"PAR1":
        return "parquet"
    if b" <-> " in first_line:
        return "cryptofeed_ws"
    if b" -> " in first_line and first_line.startswith(b"http"):
        return "cryptofeed_http"
    if head.startswith(b"[["):
        return "klines_json"
    if head.startswith(b"["):
        return "freqtrade_trades"
    if head.startswith(b"{"):
        return "jsonl"
    cells = first_line.decode("utf-8", "replace").split(",")
    if len(cells) >= 6 and all(re.fullmatch(r"-?[0-9.eE+-]+", c.strip()) for c in cells[:6]):
        return "klines_csv"
    if len(cells) >= 2:
        return "trades_csv"
    raise ValueError(f"cannot tell the format of {name}: first bytes {first_line[:60]!r}; name one of {FORMATS}")


def _symbol_from_name(name: str) -> str | None:
    stem = Path(name).name
    match = re.match(r"(?:[a-z]+_)?([A-Z0-9]+(?:_[A-Z0-9]+)?)-", stem)
    return match.group(1).replace("_", "") if match else None


def _interval_from_name(name: str) -> str | None:
    match = re.search(r"-(\d+[smhd])(?:[-.]|$)", Path(name).name)
    return match.group(1) if match else None


def interval_ns(interval: str) -> int:
    """Nanoseconds in an interval token like 1s, 5m, 4h, 1d; ValueError names the value and the allowed range."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", interval)
    if not match:
        raise ValueError(f"interval {interval!r} is not <n><s|m|h|d> (1s .. 1d)")
    return int(match.group(1)) * NS[match.group(2)]


def interval_name(ns: int) -> str:
    """The token for an interval length: 60e9 -> 1m."""
    for unit in ("d", "h", "m", "s"):
        if ns % NS[unit] == 0:
            return f"{ns // NS[unit]}{unit}"
    raise ValueError(f"interval {ns} ns is not a whole number of seconds")


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield number, line.rstrip(b"\r")


def _cryptofeed_ws(data: bytes) -> Iterator[Item]:
    venue = VENUE_SPOT
    for number, line in _lines(data):
        if number == 1 and b" <-> " in line:
            venue = VENUE_FUTURES if b"fstream" in line or b"dstream" in line else VENUE_SPOT
            continue
        try:
            stamp, _, body = line.partition(b": ")
            recorded = int(Decimal(stamp.decode()) * 1_000_000_000)
            event = parse_ws(body, venue, recorded)
        except _BAD as exc:
            yield BadRecord(number, _text(line), str(exc))
            continue
        yield Record(number, recorded, event) if event is not None else Skipped(number, "kline not closed yet")


def _cryptofeed_http(data: bytes) -> Iterator[Item]:
    for number, line in _lines(data):
        try:
            url, _, rest = line.partition(b" -> ")
            stamp, _, body = rest.partition(b": ")
            parsed = urlparse(url.decode())
            venue = VENUE_FUTURES if parsed.netloc.startswith(("fapi", "dapi")) else VENUE_SPOT
            symbol = parse_qs(parsed.query)["symbol"][0]
            recorded = int(Decimal(stamp.decode()) * 1_000_000_000)
            yield Record(number, recorded, parse_snapshot(body, venue, symbol, recorded))
        except _BAD as exc:
            yield BadRecord(number, _text(line), str(exc))


def _freqtrade_trades(data: bytes, venue: str) -> Iterator[Item]:
    try:
        rows = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        yield BadRecord(1, _text(data[:200]), f"file is not a JSON array: {exc}")
        return
    for number, row in enumerate(rows, start=1):
        try:
            info = row["info"]
            symbol = token("symbol", str(row["symbol"]).replace("/", ""))
            ms = int(info["T"])
            yield Record(number, ms * 1_000_000, Trade(
                id=derived_id(f"{venue}:{symbol}:aggTrade:{info['a']}", "md"), ts=ms * 1_000_000, venue=venue,
                symbol=symbol, price=Decimal(info["p"]), quantity=Decimal(info["q"]),
                aggressor="SELL" if info["m"] else "BUY", trade_id=str(info["a"]), venue_ts=ms * 1_000_000))
        except _BAD as exc:
            yield BadRecord(number, msgspec.json.encode(row).decode()[:2000], f"{type(exc).__name__}: {exc}")


def _bar(venue: str, symbol: str, interval: str, open_ms: int, values: list[Any], count: int,
         quote: Decimal | None, line: int) -> Record:
    o, h, low, c, v = (Decimal(repr(x)) if isinstance(x, float) else Decimal(str(x)) for x in values)
    open_ns = open_ms * 1_000_000
    bar = Bar(id=derived_id(f"{venue}:{symbol}:kline:{interval}:{open_ms}", "md"), ts=open_ns + interval_ns(interval),
              venue=venue, symbol=symbol, interval=interval, open_time=open_ns, open=o, high=h, low=low, close=c,
              volume=v, trade_count=count, quote_volume=quote)
    return Record(line, bar.ts, bar)


def _klines_json(data: bytes, venue: str, symbol: str, interval: str | None) -> Iterator[Item]:
    rows = msgspec.json.decode(data)
    if interval is None and len(rows) > 1:
        interval = interval_name(min(b[0] - a[0] for a, b in zip(rows, rows[1:], strict=False)) * 1_000_000)
    for number, row in enumerate(rows, start=1):
        try:
            yield _bar(venue, symbol, interval or "1m", int(row[0]), row[1:6], 0, None, number)
        except _BAD as exc:
            yield BadRecord(number, msgspec.json.encode(row).decode(), f"{type(exc).__name__}: {exc}")


def _klines_csv(data: bytes, venue: str, symbol: str) -> Iterator[Item]:
    for number, line in _lines(data):
        try:
            cells = line.decode().split(",")
            open_ms = int(cells[0])
            interval = interval_name((int(cells[6]) + 1 - open_ms) * 1_000_000)
            yield _bar(venue, symbol, interval, open_ms, cells[1:6], int(cells[8]), Decimal(cells[7]), number)
        except _BAD as exc:
            yield BadRecord(number, _text(line), f"{type(exc).__name__}: {exc}")


def _pick(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    return None


def to_ns(value: Any, exact_ns: bool = False) -> int:
    """A timestamp in s, ms, us or ns (told apart by magnitude) as int nanoseconds."""
    number = Decimal(str(value))
    if exact_ns:
        return int(number)
    for limit, factor in ((Decimal(10) ** 11, 10**9), (Decimal(10) ** 14, 10**6), (Decimal(10) ** 17, 10**3)):
        if abs(number) < limit:
            return int(number * factor)
    return int(number)


def generic_trade(row: dict[str, Any], venue: str, symbol: str | None, line: int) -> Record:
    """A trade from a generic CSV/JSONL/Parquet row (column names in the module docstring)."""
    ts_value = _pick(row, "ts_ns", "ts", "timestamp", "time", "T")
    price, quantity = _pick(row, "price", "p"), _pick(row, "quantity", "qty", "amount", "size", "q")
    for field, value in (("ts", ts_value), ("price", price), ("quantity", quantity)):
        if value is None:
            raise KeyError(f"{field} column is missing")
    ts = to_ns(ts_value, exact_ns="ts_ns" in row)
    sym = token("symbol", str(_pick(row, "symbol", "s") or symbol or "").replace("/", ""))
    ven = token("venue", str(_pick(row, "venue") or venue))
    side = str(_pick(row, "side") or "").upper()
    trade_id = _pick(row, "trade_id", "id", "a")
    key = f"{ven}:{sym}:trade:{trade_id}" if trade_id is not None else f"{ven}:{sym}:line:{line}:{ts}:{price}:{quantity}"
    return Record(line, ts, Trade(
        id=derived_id(key, "md"), ts=ts, venue=ven, symbol=sym,
        price=Decimal(repr(price) if isinstance(price, float) else str(price)),
        quantity=Decimal(repr(quantity) if isinstance(quantity, float) else str(quantity)),
        aggressor="BUY" if side == "BUY" else "SELL" if side == "SELL" else None,
        trade_id=None if trade_id is None else str(trade_id), venue_ts=ts))


def _jsonl(data: bytes, venue: str, symbol: str | None) -> Iterator[Item]:
    for number, line in _lines(data):
        try:
            row = msgspec.json.decode(line)
            if not isinstance(row, dict):
                raise TypeError(f"line is a JSON {type(row).__name__}, not an object")
            if "stream" in row or "e" in row or ("u" in row and "b" in row):
                recorded = int(row.get("E") or 0) * 1_000_000
                event = parse_ws(line, venue, recorded)
                yield Record(number, event.ts, event) if event is not None else Skipped(number, "kline not closed yet")
            else:
                yield generic_trade(row, venue, symbol, number)
        except _BAD as exc:
            yield BadRecord(number, _text(line), f"{type(exc).__name__}: {exc}")


def _rows(rows: Iterable[dict[str, Any]], venue: str, symbol: str | None, first_line: int,
          raw_of: Any) -> Iterator[Item]:
    for number, row in enumerate(rows, start=first_line):
        try:
            yield generic_trade(row, venue, symbol, number)
        except _BAD as exc:
            yield BadRecord(number, raw_of(row), f"{type(exc).__name__}: {exc}")


def read_records(data: bytes, *, name: str = "-", fmt: Format | None = None, venue: str | None = None,
                 symbol: str | None = None, interval: str | None = None) -> Iterator[Item]:
    """Every record of a recording, in file order, as events, refused lines and skipped lines."""
    fmt = fmt or detect_format(name, data)
    symbol = symbol or _symbol_from_name(name)
    match fmt:
        case "cryptofeed_ws":
            yield from _cryptofeed_ws(data)
        case "cryptofeed_http":
            yield from _cryptofeed_http(data)
        case "freqtrade_trades":
            yield from _freqtrade_trades(data, venue or VENUE_SPOT)
        case "klines_json" | "klines_csv":
            if symbol is None:
                raise ValueError(f"symbol is unknown for {name}: pass --symbol")
            sym = token("symbol", symbol)
            if fmt == "klines_json":
                yield from _klines_json(data, venue or VENUE_SPOT, sym, interval or _interval_from_name(name))
            else:
                yield from _klines_csv(data, venue or VENUE_SPOT, sym)
        case "jsonl":
            yield from _jsonl(data, venue or VENUE_SPOT, symbol)
        case "trades_csv":
            reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
            yield from _rows(reader, venue or "file", symbol, 2, lambda row: ",".join(map(str, row.values())))
        case "parquet":
            import pyarrow.parquet as pq  # only parquet replays pay for the import

            table = pq.read_table(io.BytesIO(data))
            yield from _rows(table.to_pylist(), venue or "file", symbol, 1, lambda row: repr(row)[:2000])
        case _:
            raise ValueError(f"format {fmt!r} is not one of {FORMATS}")


__all__ = ["FORMATS", "BadRecord", "Format", "Item", "Record", "Skipped", "detect_format", "generic_trade",
           "interval_name", "interval_ns", "read_bytes", "read_records", "to_ns"]
