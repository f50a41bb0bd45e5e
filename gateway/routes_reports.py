"""Reports over HTTP: return metrics and tear sheets from an account's P&L, the trade blotter, TCA, the daily report.

Any signed-in role may read them; accounts are limited as in routes_query (`visible_accounts`):
risk and admin see every account, others only the accounts their token grants. Fills, orders and
P&L come from the gateway's live projections; parent-order TCA (`ParentOrderCompleted`) is read
from the WAL the projections follow, incrementally.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from gateway.auth import authenticate
from gateway.errors import ApiError, bad_request, not_found
from gateway.routes_query import DEFAULT_LIMIT, MAX_LIMIT, visible_accounts
from gateway.state import GATEWAY
from gateway.tokens import Claims
from processors.reporting import metrics
from processors.reporting.report import metrics_report
from projections.blotter import (
    CompletionLog,
    InvalidDate,
    ReportInputs,
    blotter,
    daily_report,
    day_books,
    day_bounds,
    tca_summary,
)
from projections.service import Projections

_json = msgspec.json.Encoder(decimal_format="string")
_READERS = ("viewer", "trader", "risk", "admin")


class MetricsAnswer(msgspec.Struct):
    """GET /v1/reports/metrics: every metric of the account's daily returns on `capital` (null where undefined)."""

    account: str
    capital: float
    days: int
    metrics: dict[str, Any]


class TcaRow(msgspec.Struct):
    """One (algorithm, venue) TCA line; bps are costs (positive = worse than the benchmark), decimal strings."""

    algo: str
    venue: str
    orders: int
    statuses: dict[str, int]
    filled_quantity: str
    notional: str
    fees: str
    avg_shortfall_bps: str | None
    weighted_shortfall_bps: str | None
    avg_vwap_slippage_bps: str | None
    weighted_vwap_slippage_bps: str | None


class TcaAnswer(msgspec.Struct):
    """GET /v1/reports/tca."""

    date: str | None
    tca: list[TcaRow]


class BlotterRow(msgspec.Struct):
    """One fill of the trade blotter."""

    ts: int
    time: str
    account: str
    order_id: str
    client_order_id: str | None
    algo: str | None
    child_id: str
    report_id: str
    symbol: str
    side: str
    quantity: str
    price: str
    notional: str
    fee: str
    venue: str
    liquidity: str | None


class BlotterAnswer(msgspec.Struct):
    """GET /v1/reports/blotter: fills, oldest first (the newest `limit` of them)."""

    date: str | None
    fills: list[BlotterRow]


class DailyAccount(msgspec.Struct):
    """One account's day."""

    account: str
    fills: int
    buy_notional: str
    sell_notional: str
    turnover: str
    fees: str
    realized_pnl: str
    unrealized_pnl: str
    net_pnl_change: str
    cumulative_net_pnl: str
    symbols: list[str]
    tca: list[TcaRow]


class DailyAnswer(msgspec.Struct):
    """GET /v1/reports/daily."""

    date: str
    start_ts: int
    end_ts: int
    accounts: list[DailyAccount]


@dataclass
class _Completions:
    """The WAL's parent completions, read incrementally by one request at a time."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    log: CompletionLog | None = None


COMPLETIONS = web.AppKey("report_completions", _Completions)


def _respond(payload: object) -> web.Response:
    return web.Response(body=_json.encode(payload), content_type="application/json")


def _projections(request: web.Request) -> Projections:
    projections = request.app[GATEWAY].projections
    if projections is None:
        raise ApiError(503, "unavailable", "projections are not running in this gateway")
    return projections


def _accounts(request: web.Request, claims: Claims) -> tuple[str, ...] | None:
    """The accounts a report may cover: the requested one if it is yours, else all you may see."""
    accounts = visible_accounts(claims)
    requested = request.query.get("account")
    if requested is None:
        return accounts
    if accounts is not None and requested not in accounts:
        raise ApiError(403, "forbidden", f"account {requested} is not one of yours")
    return (requested,)


def _one_account(request: web.Request, claims: Claims) -> str:
    """The single account a P&L report is about: `?account=`, or the only one the token grants."""
    accounts = _accounts(request, claims)
    if accounts is not None and len(accounts) == 1:
        return accounts[0]
    raise bad_request("account is required (the report is about one account)")


def _capital(request: web.Request) -> float:
    raw = request.query.get("capital")
    if raw is None:
        raise bad_request("capital is required: returns are the day's P&L change over capital")
    try:
        value = float(raw)
    except ValueError as exc:
        raise bad_request(f"capital {raw!r} is not a number") from exc
    if not (math.isfinite(value) and value > 0):
        raise bad_request(f"capital {raw!r} must be a finite number above 0")
    return value


def _date(request: web.Request, *, required: bool = False) -> str | None:
    raw = request.query.get("date")
    if raw is None:
        if required:
            raise bad_request("date is required, as a UTC day YYYY-MM-DD")
        return None
    try:
        day_bounds(raw)
    except InvalidDate as exc:
        raise bad_request(str(exc)) from exc
    return raw


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit {raw!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


async def _inputs(request: web.Request) -> ReportInputs:
    """A snapshot of fills, orders and P&L (memory copied on the loop, which owns the state; rows on disk
    read in a thread) plus the WAL's completions."""
    projections = _projections(request)
    rows = await projections.rows_off_loop("fills", "pnl", "orders")
    inputs = ReportInputs(fills=rows["fills"], pnl=rows["pnl"], completions=[],
                          orders={order.order_id: order for order in rows["orders"]})
    holder = request.app[COMPLETIONS]
    async with holder.lock:
        if holder.log is None:
            holder.log = CompletionLog(projections.wal_root, checkpoint=projections.checkpoint_dir / "tca")
        inputs.completions = list(await asyncio.to_thread(holder.log.refresh))
    return inputs


async def _daily_returns(request: web.Request, account: str, capital: float) -> tuple[list[str], Any]:
    from processors.reporting.tearsheet import returns_from_pnl

    pnl = (await _projections(request).rows_off_loop("pnl"))["pnl"]
    points = [(p.ts, p.net_pnl) for p in pnl if p.account == account]
    if not points:
        raise not_found(f"account {account} has no P&L yet (or is not one of yours)")
    return returns_from_pnl(points, capital)


async def report_metrics(request: web.Request) -> web.Response:
    """GET /v1/reports/metrics?account=&capital=: metrics of daily returns (day's net P&L change / capital)."""
    claims = await authenticate(request, *_READERS)
    account, capital = _one_account(request, claims), _capital(request)
    dates, returns = await _daily_returns(request, account, capital)
    try:
        report = await asyncio.to_thread(metrics_report, dates, returns)
    except metrics.InvalidSeries as exc:
        raise not_found(f"account {account}: {exc}") from exc
    return _respond(MetricsAnswer(account=account, capital=capital, days=len(dates), metrics=report))


async def report_tearsheet(request: web.Request) -> web.Response:
    """GET /v1/reports/tearsheet?account=&capital=: the self-contained HTML tear sheet (opens offline)."""
    from processors.reporting.tearsheet import render

    claims = await authenticate(request, *_READERS)
    account, capital = _one_account(request, claims), _capital(request)
    dates, returns = await _daily_returns(request, account, capital)
    source = f"Account {account}, daily net P&L on capital {capital:g}, from the gateway's projections."
    try:
        page = await asyncio.to_thread(render, dates, returns, title=f"Tear sheet {account}", source=source)
    except metrics.InvalidSeries as exc:
        raise not_found(f"account {account}: {exc}") from exc
    return web.Response(text=page, content_type="text/html", charset="utf-8")


async def report_tca(request: web.Request) -> web.Response:
    """GET /v1/reports/tca?account=&date=: TCA per algorithm and venue."""
    claims = await authenticate(request, *_READERS)
    accounts, date = _accounts(request, claims), _date(request)
    inputs = await _inputs(request)
    window = day_bounds(date) if date else None
    rows = await asyncio.to_thread(tca_summary, inputs, accounts=accounts, window=window)
    return _respond({"date": date, "tca": rows})


async def report_blotter(request: web.Request) -> web.Response:
    """GET /v1/reports/blotter?account=&date=&limit=: the newest `limit` fills, oldest first."""
    claims = await authenticate(request, *_READERS)
    accounts, date, limit = _accounts(request, claims), _date(request), _limit(request)
    inputs = await _inputs(request)
    window = day_bounds(date) if date else None
    rows = await asyncio.to_thread(blotter, inputs, accounts=accounts, window=window)
    return _respond({"date": date, "fills": rows[-limit:]})


async def report_daily(request: web.Request) -> web.Response:
    """GET /v1/reports/daily?date=&account=: per account fills, turnover, P&L, fees and TCA for a UTC day."""
    claims = await authenticate(request, *_READERS)
    accounts, date = _accounts(request, claims), _date(request, required=True)
    assert date is not None
    inputs = await _inputs(request)
    projections = _projections(request)
    books = await asyncio.to_thread(day_books, projections.wal_root, date, ladder_dir=projections.ladder.directory)
    return _respond(await asyncio.to_thread(daily_report, inputs, date, books, accounts=accounts))


def register(app: web.Application) -> None:
    """Add the report routes."""
    app[COMPLETIONS] = _Completions()
    app.router.add_get("/v1/reports/metrics", report_metrics)
    app.router.add_get("/v1/reports/tearsheet", report_tearsheet)
    app.router.add_get("/v1/reports/tca", report_tca)
    app.router.add_get("/v1/reports/blotter", report_blotter)
    app.router.add_get("/v1/reports/daily", report_daily)


__all__ = ["BlotterAnswer", "DailyAnswer", "MetricsAnswer", "TcaAnswer", "register"]
