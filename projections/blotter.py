"""Trade blotter, TCA summary per algorithm and venue, the daily report per account and an account's
P&L points, from the projections folded over the WAL (`sq report` and the gateway's `/v1/reports/*`).

Conventions (written down so nobody guesses):

- Days are UTC calendar days; a fill belongs to the day of its event time, a parent order's TCA to
  the day it completed (`end_ts`).
- TCA figures are costs in basis points, positive when the order did worse than the benchmark,
  exactly as `events.trading.ParentOrderCompleted` defines them; fees are not in them.
- A TCA row is one (algorithm, venue) pair. Venue `ALL` rows take each order's own figures from its
  `ParentOrderCompleted`. Venue rows split each order by the venue its fills executed at: that
  venue's average fill price against the same order's arrival price and interval VWAP. An order
  that filled nothing counts in `ALL` only.
- `avg_*_bps` is the plain mean over orders that have the figure; `weighted_*_bps` weights each
  order by its filled notional. Both are rounded to 1e-4 bps.
- The daily report folds the WAL to the day's start and end (broker time): realized P&L is the
  change of cumulative realized P&L over the day, unrealized P&L is the open positions at the
  end of the day marked at the last market trade before it, fees are the day's fills' fees.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from events.codec import encode
from events.subjects import STREAM_TRADING
from events.trading import ParentOrderCompleted
from projections.rows import FillRow, OrderRow, PnlPoint
from store.follow import history, last_recorded

ZERO = Decimal(0)
BPS = Decimal("0.0001")
ALL_VENUES = "ALL"
DAY_NS = 86_400 * 10**9
TCA_SUBJECT_PREFIX = "sq.exec.tca."
log = logging.getLogger(__name__)
_completion_decoder = msgspec.json.Decoder(ParentOrderCompleted)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class InvalidDate(ValueError):
    """A --date / ?date= that is not YYYY-MM-DD; `value` keeps what was given."""

    def __init__(self, value: str) -> None:
        super().__init__(f"date {value!r} is not a UTC day as YYYY-MM-DD")
        self.value = value


class NoPnl(ValueError):
    """The WAL holds no P&L for the account; `account` and `wal_root` are attributes."""

    def __init__(self, account: str, wal_root: Path, reason: str) -> None:
        super().__init__(f"account {account} {reason} in {wal_root}")
        self.account = account
        self.wal_root = wal_root


def day_bounds(date: str) -> tuple[int, int]:
    """[start, end) of a UTC day in ns since the epoch."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError as exc:
        raise InvalidDate(date) from exc
    if len(date) != 10:
        raise InvalidDate(date)
    start = (day - dt.date(1970, 1, 1)).days * DAY_NS
    return start, start + DAY_NS


def iso_time(ts: int) -> str:
    """ns since the epoch as ISO-8601 UTC with microseconds."""
    moment = _EPOCH + dt.timedelta(microseconds=ts // 1000)  # integer arithmetic: floats lose the microseconds
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plain(value: Decimal | None) -> str | None:
    """A decimal as digits without exponent ("500", not "5E+2"), None kept."""
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


@dataclass
class ReportInputs:
    """What the reports read: fills, orders and P&L from the projections, parent completions from the WAL."""

    fills: list[FillRow]
    orders: dict[str, OrderRow]
    pnl: list[PnlPoint]
    completions: list[ParentOrderCompleted]


@dataclass
class CompletionLog:
    """Every ParentOrderCompleted in a WAL, read incrementally (each call reads only what is new).

    With `checkpoint` (a directory beside the projections' checkpoints), what was read is appended
    there with the WAL positions it reflects, so a restarted gateway reads only what was recorded
    since, never the whole WAL again."""

    wal_root: Path
    checkpoint: Path | None = None
    completions: list[ParentOrderCompleted] = field(default_factory=list)
    _after: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _loaded: bool = False

    def refresh(self) -> list[ParentOrderCompleted]:
        """Fold in completions recorded since the last call (blocking: reads files)."""
        if not self._loaded:
            self._load()
        streams = [STREAM_TRADING.name]
        until = last_recorded(self.wal_root, streams)
        before = len(self.completions)
        for envelope in history(self.wal_root, streams, self._after, until=until, source="reporting-tca",
                                wanted=lambda subject: subject.startswith(TCA_SUBJECT_PREFIX)):
            event = envelope.event
            # One completion per order: a redelivered publish outside the dedupe window is not a second order.
            if isinstance(event, ParentOrderCompleted) and event.order_id not in self._seen:
                self._seen.add(event.order_id)
                self.completions.append(event)
        moved = until != self._after
        self._after = {stream: max(seq, self._after.get(stream, 0)) for stream, seq in until.items()}
        if self.checkpoint is not None and moved:
            self._save(self.completions[before:])
        return self.completions

    def _load(self) -> None:
        """Completions and positions kept by an earlier process (a torn last line is read again from the WAL)."""
        self._loaded = True
        if self.checkpoint is None or not (self.checkpoint / "positions.json").exists():
            return
        try:
            after = json.loads((self.checkpoint / "positions.json").read_text())
            lines = (self.checkpoint / "completions.jsonl").read_bytes().splitlines()
        except (OSError, ValueError) as exc:
            log.warning("TCA completions checkpoint skipped; reading the WAL from the start",
                        extra={"path": str(self.checkpoint), "reason": repr(exc)})
            return
        kept = 0
        for line in lines:
            try:
                event = _completion_decoder.decode(line)
            except msgspec.DecodeError:
                # Torn by a crash mid-append (before the positions moved past it): cut it off; the
                # WAL after the positions still has it.
                os.truncate(self.checkpoint / "completions.jsonl", kept)
                break
            kept += len(line) + 1
            if event.order_id not in self._seen:
                self._seen.add(event.order_id)
                self.completions.append(event)
        self._after = {str(stream): int(seq) for stream, seq in after.items()}

    def _save(self, new: list[ParentOrderCompleted]) -> None:
        """Append the new completions, then move the positions (written whole, atomically)."""
        assert self.checkpoint is not None
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        with open(self.checkpoint / "completions.jsonl", "ab") as handle:
            handle.write(b"".join(encode(event) + b"\n" for event in new))
        temp = self.checkpoint / ".positions.json.tmp"
        temp.write_text(json.dumps(self._after))
        os.replace(temp, self.checkpoint / "positions.json")


def load_inputs(data_dir: Path) -> ReportInputs:
    """Fold the WAL under `data_dir/wal` into the projections and collect parent completions (blocking)."""
    from projections.service import Projections  # pyarrow and DuckDB: a second to import, paid only here

    wal_root = data_dir / "wal"
    projections = Projections(wal_root, data_dir / "projections")
    projections.load_and_catch_up()
    return ReportInputs(fills=projections.rows("fills"), pnl=projections.rows("pnl"),
                        orders={order.order_id: order for order in projections.rows("orders")},
                        completions=CompletionLog(wal_root).refresh())


def pnl_from_wal(data_dir: Path, account: str) -> list[tuple[int, Decimal]]:
    """The account's (ts, cumulative net P&L) points from the projections folded over the WAL (blocking)."""
    from projections.service import Projections

    wal_root = data_dir / "wal"
    if not wal_root.is_dir():
        raise NoPnl(account, wal_root, "cannot be read: no WAL directory")
    projections = Projections(wal_root, data_dir / "projections")
    projections.load_and_catch_up()
    points = [(p.ts, p.net_pnl) for p in projections.rows("pnl") if p.account == account]
    if not points:
        raise NoPnl(account, wal_root, "has no P&L points")
    return points


def _keep(account: str, ts: int, accounts: Iterable[str] | None, window: tuple[int, int] | None) -> bool:
    return (accounts is None or account in accounts) and (window is None or window[0] <= ts < window[1])


def blotter(inputs: ReportInputs, *, accounts: Iterable[str] | None = None,
            window: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Every fill, oldest first: order, side, quantity, price, notional, fee, venue, liquidity, time."""
    allowed = None if accounts is None else set(accounts)
    rows = []
    for fill in sorted(inputs.fills, key=lambda f: (f.ts, f.report_id)):
        if not _keep(fill.account, fill.ts, allowed, window):
            continue
        order = inputs.orders.get(fill.order_id)
        rows.append({"ts": fill.ts, "time": iso_time(fill.ts), "account": fill.account, "order_id": fill.order_id,
                     "client_order_id": order.client_order_id if order else None,
                     "algo": order.algo if order else None, "child_id": fill.child_id, "report_id": fill.report_id,
                     "symbol": fill.symbol, "side": fill.side, "quantity": _plain(fill.quantity),
                     "price": _plain(fill.price), "notional": _plain(fill.quantity * fill.price),
                     "fee": _plain(fill.fee), "venue": fill.venue, "liquidity": fill.liquidity})
    return rows


def _cost_bps(side: str, price: Decimal, benchmark: Decimal | None) -> Decimal | None:
    """The ParentOrderCompleted sign convention: positive when a BUY paid more or a SELL received less."""
    if benchmark is None or benchmark == 0:
        return None
    sign = 1 if side == "BUY" else -1
    return sign * (price - benchmark) / benchmark * 10_000


@dataclass
class _Bucket:
    orders: int = 0
    filled_quantity: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    shortfalls: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (bps, notional weight)
    slippages: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, status: str, quantity: Decimal, notional: Decimal, fees: Decimal, shortfall: Decimal | None,
            slippage: Decimal | None) -> None:
        self.orders += 1
        self.statuses[status] += 1
        self.filled_quantity += quantity
        self.notional += notional
        self.fees += fees
        if shortfall is not None:
            self.shortfalls.append((shortfall, notional))
        if slippage is not None:
            self.slippages.append((slippage, notional))


def _means(values: list[tuple[Decimal, Decimal]]) -> tuple[str | None, str | None]:
    if not values:
        return None, None
    plain = sum((v for v, _ in values), ZERO) / len(values)
    weight = sum((w for _, w in values), ZERO)
    weighted = sum((v * w for v, w in values), ZERO) / weight if weight else None
    return _plain(plain.quantize(BPS)), _plain(weighted.quantize(BPS)) if weighted is not None else None


def _completions(inputs: ReportInputs, accounts: set[str] | None,
                 window: tuple[int, int] | None) -> Iterator[ParentOrderCompleted]:
    return (c for c in inputs.completions if _keep(c.account, c.end_ts, accounts, window))


def tca_summary(inputs: ReportInputs, *, accounts: Iterable[str] | None = None,
                window: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """TCA per (algorithm, venue) over completed parent orders; venue ALL uses each order's own figures."""
    allowed = None if accounts is None else set(accounts)
    fills_by_order: dict[str, list[FillRow]] = defaultdict(list)
    for fill in inputs.fills:
        fills_by_order[fill.order_id].append(fill)
    buckets: dict[tuple[str, str], _Bucket] = defaultdict(_Bucket)
    for done in _completions(inputs, allowed, window):
        notional = done.filled_quantity * done.average_price if done.average_price is not None else ZERO
        buckets[(done.algo, ALL_VENUES)].add(done.status, done.filled_quantity, notional, done.fees,
                                             done.shortfall_bps, done.vwap_slippage_bps)
        by_venue: dict[str, list[FillRow]] = defaultdict(list)
        for fill in fills_by_order.get(done.order_id, []):
            by_venue[fill.venue].append(fill)
        for venue, fills in sorted(by_venue.items()):
            quantity = sum((f.quantity for f in fills), ZERO)
            venue_notional = sum((f.quantity * f.price for f in fills), ZERO)
            average = venue_notional / quantity
            buckets[(done.algo, venue)].add(done.status, quantity, venue_notional, sum((f.fee for f in fills), ZERO),
                                            _cost_bps(done.side, average, done.arrival_price),
                                            _cost_bps(done.side, average, done.interval_vwap))
    rows = []
    for (algo, venue), bucket in sorted(buckets.items(), key=lambda item: (item[0][0], item[0][1] != ALL_VENUES,
                                                                           item[0][1])):
        shortfall, weighted_shortfall = _means(bucket.shortfalls)
        slippage, weighted_slippage = _means(bucket.slippages)
        rows.append({"algo": algo, "venue": venue, "orders": bucket.orders, "statuses": dict(bucket.statuses),
                     "filled_quantity": _plain(bucket.filled_quantity), "notional": _plain(bucket.notional),
                     "fees": _plain(bucket.fees), "avg_shortfall_bps": shortfall,
                     "weighted_shortfall_bps": weighted_shortfall, "avg_vwap_slippage_bps": slippage,
                     "weighted_vwap_slippage_bps": weighted_slippage})
    return rows


@dataclass(frozen=True, slots=True)
class AccountPnl:
    """An account's cumulative P&L at one moment, positions marked at the last trade price then known."""

    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """Realized plus unrealized less fees."""
        return self.realized + self.unrealized - self.fees


def _books(state: Any) -> dict[str, AccountPnl]:
    totals: dict[str, AccountPnl] = {}
    for row in state.position_rows():
        before = totals.get(row.account, AccountPnl())
        totals[row.account] = AccountPnl(before.realized + row.realized_pnl,
                                         before.unrealized + (row.unrealized_pnl or ZERO), before.fees + row.fees)
    return totals


def day_books(wal_root: Path, date: str, *, ladder_dir: Path | None = None
              ) -> tuple[dict[str, AccountPnl], dict[str, AccountPnl]]:
    """Every account's P&L at the start and at the end of a UTC day (blocking).

    Positions are rebuilt as `Projections.as_of` rebuilds them, from the nearest checkpoint of the
    as-of ladder under `ladder_dir` (DATA_DIR/projections/ladder) plus at most one interval of the
    WAL, so they are marked with the last trade before each boundary; without a ladder, from the
    first record.
    """
    from projections.ladder import Ladder
    from projections.service import STREAMS

    ladder = Ladder(wal_root, ladder_dir or wal_root / "no-as-of-ladder", streams=STREAMS)
    opening, closing = (_books(ladder.as_of(cut - 1)) for cut in day_bounds(date))
    return opening, closing


def daily_report(inputs: ReportInputs, date: str, books: tuple[dict[str, AccountPnl], dict[str, AccountPnl]], *,
                 accounts: Iterable[str] | None = None) -> dict[str, Any]:
    """Per account for one UTC day: fills, turnover, realized and unrealized P&L, fees, and the day's TCA.

    `books` is (opening, closing) P&L per account, from `day_books`.
    """
    window = day_bounds(date)
    allowed = None if accounts is None else set(accounts)
    opening, closing = books
    fills = [f for f in inputs.fills if _keep(f.account, f.ts, allowed, window)]
    names = {f.account for f in fills} | {c.account for c in _completions(inputs, allowed, window)}
    names |= {a for a in closing if (allowed is None or a in allowed) and closing[a] != opening.get(a, AccountPnl())}
    report = []
    for account in sorted(names):
        mine = [f for f in fills if f.account == account]
        start, end = opening.get(account, AccountPnl()), closing.get(account, AccountPnl())
        report.append({
            "account": account, "fills": len(mine),
            "buy_notional": _plain(sum((f.quantity * f.price for f in mine if f.side == "BUY"), ZERO)),
            "sell_notional": _plain(sum((f.quantity * f.price for f in mine if f.side == "SELL"), ZERO)),
            "turnover": _plain(sum((f.quantity * f.price for f in mine), ZERO)),
            "fees": _plain(sum((f.fee for f in mine), ZERO)), "realized_pnl": _plain(end.realized - start.realized),
            "unrealized_pnl": _plain(end.unrealized), "net_pnl_change": _plain(end.net - start.net),
            "cumulative_net_pnl": _plain(end.net), "symbols": sorted({f.symbol for f in mine}),
            "tca": tca_summary(inputs, accounts=[account], window=window)})
    return {"date": date, "start_ts": window[0], "end_ts": window[1], "accounts": report}


__all__ = ["ALL_VENUES", "AccountPnl", "CompletionLog", "InvalidDate", "NoPnl", "ReportInputs", "blotter", "daily_report",
           "day_books", "day_bounds", "load_inputs", "pnl_from_wal", "tca_summary"]
