"""Kite instrument tokens for configured instruments, from the instruments list, cached on disk for the IST day.

`GET {api}/instruments` (Kite Connect v3, authenticated) answers a CSV dump, gzipped on the wire,
of every tradable instrument with its `instrument_token` (what the ticker subscribes to),
`exchange` and `tradingsymbol`. Kite regenerates it every morning, so one copy serves a whole
IST day: it is kept at `<data_dir>/kite/instruments-YYYY-MM-DD.csv` and fetched again when the
day changes. Our symbol for an instrument is its tradingsymbol with any character outside
`[A-Za-z0-9_-]` replaced by `_` (`M&M` -> `M_M`), since symbols are subject tokens.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from processors.connector.kite.orders import KiteInstrument
from processors.connector.kite.session import KiteError, KiteSession
from processors.connector.kite.ticker import IST

COLUMNS = ("instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry", "strike",
           "tick_size", "lot_size", "instrument_type", "segment", "exchange")


class InstrumentError(ValueError):
    """A configured instrument is malformed or not in Kite's list; `field`, `value` and `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


def our_symbol(tradingsymbol: str) -> str:
    """The subject-safe symbol we use for a Kite tradingsymbol."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", tradingsymbol)


def parse_wanted(text: str) -> list[tuple[str, str]]:
    """`NSE:INFY,NSE:RELIANCE` -> [("NSE", "INFY"), ("NSE", "RELIANCE")]."""
    wanted = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        exchange, sep, tradingsymbol = part.partition(":")
        if not sep or not exchange or not tradingsymbol:
            raise InstrumentError("--instruments", part, "is not EXCHANGE:TRADINGSYMBOL (e.g. NSE:INFY)")
        wanted.append((exchange.upper(), tradingsymbol.upper()))
    if not wanted:
        raise InstrumentError("--instruments", text, "names no instrument")
    return wanted


def parse_list(text: str) -> dict[tuple[str, str], int]:
    """The instruments CSV as (exchange, tradingsymbol) -> instrument_token."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("instrument_token", "tradingsymbol", "exchange") if c not in (reader.fieldnames or [])]
    if missing:
        raise InstrumentError("instruments", ",".join(missing), "columns are missing from Kite's list")
    return {(row["exchange"], row["tradingsymbol"]): int(row["instrument_token"]) for row in reader}


def resolve(listing: dict[tuple[str, str], int], wanted: list[tuple[str, str]]) -> dict[str, KiteInstrument]:
    """Our symbol -> KiteInstrument (exchange, tradingsymbol, token) for each wanted instrument."""
    out: dict[str, KiteInstrument] = {}
    for exchange, tradingsymbol in wanted:
        token = listing.get((exchange, tradingsymbol))
        if token is None:
            raise InstrumentError("--instruments", f"{exchange}:{tradingsymbol}", "is not in Kite's instruments list")
        symbol = our_symbol(tradingsymbol)
        if symbol in out:
            first = out[symbol]
            raise InstrumentError("--instruments", f"{exchange}:{tradingsymbol}",
                                  f"is the symbol {symbol} of {first.exchange}:{first.tradingsymbol} too")
        out[symbol] = KiteInstrument(symbol, exchange, tradingsymbol, token)
    return out


class InstrumentCache:
    """The day's instruments list: read from disk when today's copy exists, else fetched and saved."""

    def __init__(self, session: KiteSession, data_dir: Path | str, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.session = session
        self.dir = Path(data_dir) / "kite"
        self.clock = clock
        self.fetches = 0

    def path(self) -> Path:
        """Where today's (IST) copy lives."""
        return self.dir / f"instruments-{self.clock().astimezone(IST).date().isoformat()}.csv"

    async def listing(self) -> dict[tuple[str, str], int]:
        """Today's list, fetching it once per IST day; older copies are removed."""
        path = self.path()
        if not path.exists():
            text = await self._fetch()
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            for old in self.dir.glob("instruments-*.csv"):
                if old != path:
                    old.unlink()
        return parse_list(path.read_text())

    async def _fetch(self) -> str:
        url = f"{self.session.urls.api}/instruments"
        for attempt in range(2):
            async with self.session.http.get(url, headers=await self.session.headers()) as response:
                if response.status == 403 and attempt == 0:
                    self.session.expire()  # a stale token: log in again once
                    continue
                if response.status != 200:
                    raise KiteError("instruments", response.status, None, (await response.text())[:200])
                self.fetches += 1
                return await response.text()
        raise KiteError("instruments", 403, "TokenException", "token refused twice")

    async def resolve(self, wanted: list[tuple[str, str]]) -> dict[str, KiteInstrument]:
        """The wanted instruments with their tokens, from today's list."""
        return resolve(await self.listing(), wanted)


__all__ = ["COLUMNS", "InstrumentCache", "InstrumentError", "our_symbol", "parse_list", "parse_wanted", "resolve"]
