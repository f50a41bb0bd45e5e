"""Reads over HTTP: orders, fills, positions and P&L (with as_of), candles, book tops, audit trails, and SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway.auth import authenticate
from gateway.errors import ApiError, bad_request, not_found
from gateway.routes_auth import read_json
from gateway.state import GATEWAY
from gateway.tokens import Claims
from projections.query import QueryError, QueryResult, Relation
from projections.service import Projections
from projections.tables import ROW_TYPES

_json = msgspec.json.Encoder(decimal_format="string")
DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000
_READERS = ("viewer", "trader", "risk", "admin")
# Remembered answers: at most this many, holding at most this many rows between them (a 10,000-row
# answer is some 15 MB of Python objects).
_MAX_ANSWERS = 128
_MAX_ANSWER_ROWS = 20_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A dashboard asks for the newest few orders, fills and P&L points every few seconds. Asked first of
# this much recent event time, DuckDB hands the bound to the Parquet scan, which skips every row group
# older than it: an answer then costs about the same after a day of history as after a minute.
RECENT_NS = 10 * 60 * 1_000_000_000


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/query."""

    sql: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 1_000


_query_decoder = msgspec.json.Decoder(QueryRequest)


def _respond(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=_json.encode(payload), status=status, content_type="application/json")


def _projections(request: web.Request) -> Projections:
    projections = request.app[GATEWAY].projections
    if projections is None:
        raise ApiError(503, "unavailable", "projections are not running in this gateway")
    return projections


def visible_accounts(claims: Claims) -> tuple[str, ...] | None:
    """None (every account) for risk and admin; otherwise the accounts the token grants."""
    return None if {"risk", "admin"} & set(claims.roles) else claims.accounts


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    # isdigit() alone admits digits int() refuses ("²"); ASCII only.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit {raw!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _as_of(request: web.Request) -> int | None:
    """`as_of` as ns since epoch: an integer of ns, or an ISO-8601 time with a zone."""
    raw = request.query.get("as_of")
    if raw is None:
        return None
    if raw.isascii() and raw.isdigit():
        value = int(raw)
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise bad_request(f"as_of {raw!r} is neither ns since epoch nor an ISO-8601 time") from exc
        if moment.tzinfo is None:
            raise bad_request(f"as_of {raw!r} needs a time zone (e.g. Z)")
        # Integer arithmetic: a float timestamp times 1e9 loses the last digits.
        value = (moment - _EPOCH) // timedelta(microseconds=1) * 1_000
    if not 0 <= value < 2**63:
        raise bad_request(f"as_of {raw!r} is outside 1970-01-01 .. 2262-04-11 (int64 ns)")
    return value


async def _select(request: web.Request, sql: str, parameters: Sequence[object], *, table: str | None = None,
                  as_of: int | None = None, limit: int = DEFAULT_LIMIT,
                  newest_by: str | None = None) -> list[dict[str, Any]]:
    """Run SQL over the caller's visible tables (current, or rebuilt at `as_of`) in a worker thread.

    With `newest_by` (a time column the SQL orders by, newest first), `sql` holds a `{recent}` slot:
    see `_newest_rows`."""
    claims = await authenticate(request, *_READERS)
    projections = _projections(request)
    accounts = visible_accounts(claims)
    requested = request.query.get("account")
    if requested is not None:
        if accounts is not None and requested not in accounts:
            raise ApiError(403, "forbidden", f"account {requested} is not one of yours")
        accounts = (requested,)
    names = (table,) if table else None
    key = (sql, tuple(parameters), limit, accounts)
    built_at = projections.cache.built_at(projections.state, table) if table and as_of is None else None
    # Answers of the fixed read routes are kept with the version of the table they were computed
    # from (never the table itself: an answer must not keep a whole old table alive).
    answers = projections.answers
    cached = answers.get(key)
    if built_at is not None and cached is not None and cached[0] == built_at:
        # The table this route reads has not changed since the same question was answered.
        return cached[1]
    if as_of is None:
        tables = projections.tables(accounts=accounts, names=names)
    else:
        state = await asyncio.to_thread(projections.as_of, as_of)
        tables = projections.tables(state, accounts=accounts, names=names)
    if newest_by is None:
        result = await _query(projections, sql, tables, parameters, limit)
    else:
        # A rebuilt past state (`as_of`) is all in memory: no Parquet to skip.
        since = projections.state.clock - RECENT_NS if as_of is None else 0
        result = await _newest_rows(projections, sql, newest_by, since, tables, parameters, limit)
    rows = [{key: _plain(value) for key, value in row.items()} for row in result.table.to_pylist()]
    if built_at is not None:
        answers.pop(key, None)
        answers[key] = (built_at, rows)
        held = sum(len(answer) for _, answer in answers.values())
        while len(answers) > _MAX_ANSWERS or held > _MAX_ANSWER_ROWS:
            held -= len(answers.pop(next(iter(answers)))[1])    # the oldest first
    return rows


async def _query(projections: Projections, sql: str, tables: dict[str, Relation], parameters: Sequence[object],
                 limit: int) -> QueryResult:
    """One query in a worker thread; a refused or failed query is the caller's 400."""
    try:
        return await asyncio.to_thread(projections.query, sql, tables, list(parameters), limit)
    except QueryError as exc:
        raise bad_request(exc.reason, "invalid_query") from exc


async def _newest_rows(projections: Projections, sql: str, newest_by: str, since: int, tables: dict[str, Relation],
                       parameters: Sequence[object], limit: int) -> QueryResult:
    """The newest `limit` rows: asked first of the rows with `newest_by` >= `since`, of every row only
    when those are too few.

    The same answer either way: every row outside the window is older than all `limit` rows inside it."""
    if since > 0:
        result = await _query(projections, sql.format(recent=f" and {newest_by} >= ?"), tables, [*parameters, since],
                              limit)
        if result.table.num_rows >= limit:
            return result
    return await _query(projections, sql.format(recent=""), tables, parameters, limit)


async def _newest(request: web.Request, table: str, ts_column: str, clauses: list[str], parameters: Sequence[object],
                  limit: int, *, as_of: int | None = None) -> list[dict[str, Any]]:
    """The newest `limit` rows of `table` meeting `clauses`, newest first (from the last RECENT_NS of
    event time when it holds that many, else from the whole table)."""
    sql = f"select * from {table} where {' and '.join(clauses)}{{recent}} order by {ts_column} desc"
    return await _select(request, sql, parameters, table=table, as_of=as_of, limit=limit, newest_by=ts_column)


def _plain(value: object) -> object:
    """Decimals as plain digit strings without exponent or padding zeros ("500", not "5.00E+2")."""
    if isinstance(value, Decimal):
        text = f"{value.normalize():f}"
        return "0" if text in ("-0", "0") else text
    return value


def _equal_to_query(request: web.Request, *columns: str) -> tuple[list[str], list[object]]:
    """SQL conditions (and their parameters) that each of `columns` given in the query string equals its value."""
    clauses: list[str] = ["1=1"]
    parameters: list[object] = []
    for column in columns:
        if column in request.query:
            clauses.append(f'"{column}" = ?')
            parameters.append(request.query[column])
    return clauses, parameters


async def list_orders(request: web.Request) -> web.Response:
    """GET /v1/orders: recent parent orders (optional ?status=, ?symbol=)."""
    clauses, parameters = _equal_to_query(request, "status", "symbol")
    return _respond({"orders": await _newest(request, "orders", "created_ts", clauses, parameters, _limit(request))})


async def get_order(request: web.Request) -> web.Response:
    """GET /v1/orders/{id}: state, filled quantity, average price, decision, children and fills."""
    order_id = request.match_info["order_id"]
    orders = await _select(request, "select * from orders where order_id = ?", [order_id], table="orders")
    if not orders:
        raise not_found(f"order {order_id} is not known (or not one of yours)")
    children = await _select(request, "select * from children where order_id = ? order by slice_index, created_ts",
                             [order_id], table="children", limit=MAX_LIMIT)
    fills = await _select(request, "select * from fills where order_id = ? order by ts", [order_id], table="fills", limit=MAX_LIMIT)
    decisions = await _select(request, "select * from decisions where order_id = ?", [order_id], table="decisions")
    return _respond({**orders[0], "decision": decisions[0] if decisions else None, "children": children,
                     "fills": fills})


async def list_fills(request: web.Request) -> web.Response:
    """GET /v1/fills: executions, newest first (optional ?symbol=)."""
    clauses, parameters = _equal_to_query(request, "symbol")
    return _respond({"fills": await _newest(request, "fills", "ts", clauses, parameters, _limit(request))})


async def list_decisions(request: web.Request) -> web.Response:
    """GET /v1/decisions: risk decisions, newest first (optional ?symbol=, ?accepted=true|false)."""
    clauses, parameters = _equal_to_query(request, "symbol")
    if "accepted" in request.query:
        raw = request.query["accepted"]
        if raw not in ("true", "false"):
            raise bad_request(f"accepted {raw!r} must be true or false")
        clauses.append("accepted = ?")
        parameters.append(raw == "true")
    return _respond({"decisions": await _newest(request, "decisions", "ts", clauses, parameters, _limit(request))})


async def positions(request: web.Request) -> web.Response:
    """GET /v1/positions (?as_of=): positions with marks and P&L."""
    as_of = _as_of(request)
    rows = await _select(request, "select * from positions order by account, symbol", [], table="positions", as_of=as_of,
                         limit=MAX_LIMIT)
    return _respond({"as_of": as_of, "positions": rows})


async def pnl(request: web.Request) -> web.Response:
    """GET /v1/pnl (?as_of=, ?limit=): the latest `limit` points of the P&L time series (at or before `as_of`),
    per account, oldest first."""
    as_of = _as_of(request)
    limit = _limit(request)
    # P&L points are append-only and stamped with their event time: the points at `as_of` are the
    # table's points up to it (no rebuild needed; positions?as_of= rebuilds from the ladder).
    clauses, parameters = (["1=1"], []) if as_of is None else (["ts <= ?"], [as_of])
    rows = await _newest(request, "pnl", "ts", clauses, parameters, limit)
    return _respond({"as_of": as_of, "pnl": sorted(rows, key=lambda row: (row["account"], row["ts"]))})


async def candles(request: web.Request) -> web.Response:
    """GET /v1/candles?symbol=&interval=&venue=: bars, oldest first."""
    clauses, parameters = _equal_to_query(request, "symbol", "interval", "venue")
    sql = f"select * from (select * from candles where {' and '.join(clauses)} order by open_time desc limit ?) " \
          "order by open_time"
    limit = _limit(request)
    return _respond({"candles": await _select(request, sql, [*parameters, limit], table="candles", limit=limit)})


async def book(request: web.Request) -> web.Response:
    """GET /v1/book/{venue}/{symbol}: the latest book top."""
    venue, symbol = request.match_info["venue"], request.match_info["symbol"]
    rows = await _select(request, "select * from book_tops where venue = ? and symbol = ?", [venue, symbol], table="book_tops")
    if not rows:
        raise not_found(f"no book for {venue}/{symbol} yet")
    return _respond(rows[0])


async def audit_order(request: web.Request) -> web.Response:
    """GET /v1/audit/orders/{id}: every event of the order in log order, with stream and WAL sequence."""
    order_id = request.match_info["order_id"]
    orders = await _select(request, "select account from orders where order_id = ?", [order_id], table="orders")
    if not orders:
        raise not_found(f"order {order_id} is not known (or not one of yours)")
    rows = await _select(request, "select * from audit where order_id = ? order by stored_ts, stream, seq",
                         [order_id], table="audit", limit=MAX_LIMIT)
    return _respond({"order_id": order_id, "events": rows})


async def run_query(request: web.Request) -> web.Response:
    """POST /v1/query {sql}: read-only DuckDB over the caller's visible tables."""
    body = await read_json(request, _query_decoder)
    assert isinstance(body, QueryRequest)
    rows = await _select(request, body.sql, [], limit=body.max_rows)
    return _respond({"rows": rows, "row_count": len(rows), "tables": sorted(ROW_TYPES)})


def register(app: web.Application) -> None:
    """Add the read routes."""
    app.router.add_get("/v1/orders", list_orders)
    app.router.add_get("/v1/orders/{order_id}", get_order)
    app.router.add_get("/v1/fills", list_fills)
    app.router.add_get("/v1/decisions", list_decisions)
    app.router.add_get("/v1/positions", positions)
    app.router.add_get("/v1/pnl", pnl)
    app.router.add_get("/v1/candles", candles)
    app.router.add_get("/v1/book/{venue}/{symbol}", book)
    app.router.add_get("/v1/audit/orders/{order_id}", audit_order)
    app.router.add_post("/v1/query", run_query)


__all__ = ["register"]
