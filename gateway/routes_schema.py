"""The OpenAPI 3.1 document (generated from the event and request Structs) and the event JSON Schemas."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from aiohttp import web

from events.codec import EVENT_TYPES_BY_NAME
from events.schema import all_schemas, event_schema
from events.trading import OrderIntent
from gateway import routes_ws
from gateway.depth import DEFAULT_LEVELS, MAX_LEVELS, BookList, Depth
from gateway.errors import not_found
from gateway.routes_auth import (
    Disabled,
    Enrolled,
    LoginRequest,
    LoginResponse,
    NewUser,
    RevokeRequest,
    SessionList,
    UserList,
)
from gateway.routes_orders import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY, KillSwitchRequest
from gateway.routes_portfolio import RebalancePreview, TargetsAccepted, TargetsRequest
from gateway.routes_query import DEFAULT_LIMIT, MAX_LIMIT, QueryRequest
from gateway.routes_reports import BlotterAnswer, DailyAnswer, MetricsAnswer, TcaAnswer
from projections.rows import (
    AuditRow,
    CandleRow,
    ChildRow,
    DecisionRow,
    FillRow,
    OrderRow,
    PnlPoint,
    PositionRow,
    TopRow,
)


class ErrorBody(msgspec.Struct):
    """Every error response: a stable code and a detail naming the cause."""

    error: str
    detail: str


class OrderAccepted(msgspec.Struct):
    """202 answer to an order, cancel or kill-switch request: where the event landed."""

    stream: str
    stream_seq: int
    duplicate: bool
    durable: bool
    order_id: str | None = None
    client_order_id: str | None = None
    cancel_id: str | None = None
    event_id: str | None = None
    engaged: bool | None = None
    account: str | None = None


class Identity(msgspec.Struct):
    """GET /v1/auth/me: who the token belongs to."""

    username: str
    roles: list[str]
    accounts: list[str]
    expires_at: int


class Revoked(msgspec.Struct):
    """POST /v1/auth/logout: the token is revoked."""

    revoked: bool


class OrderList(msgspec.Struct):
    """GET /v1/orders."""

    orders: list[OrderRow]


class OrderDetail(OrderRow, kw_only=True):
    """GET /v1/orders/{order_id}: the order row with its risk decision, children and fills."""

    decision: DecisionRow | None
    # The route replaces the row's child count with the child rows themselves.
    children: list[ChildRow]  # type: ignore[assignment]
    fills: list[FillRow]


class FillList(msgspec.Struct):
    """GET /v1/fills."""

    fills: list[FillRow]


class DecisionList(msgspec.Struct):
    """GET /v1/decisions."""

    decisions: list[DecisionRow]


class PositionList(msgspec.Struct):
    """GET /v1/positions: `as_of` echoes the request (ns since epoch) or is null for now."""

    as_of: int | None
    positions: list[PositionRow]


class PnlSeries(msgspec.Struct):
    """GET /v1/pnl."""

    as_of: int | None
    pnl: list[PnlPoint]


class CandleList(msgspec.Struct):
    """GET /v1/candles, oldest first."""

    candles: list[CandleRow]


class AuditTrail(msgspec.Struct):
    """GET /v1/audit/orders/{order_id}: the order's events in log order."""

    order_id: str
    events: list[AuditRow]


class QueryAnswer(msgspec.Struct):
    """POST /v1/query: rows as objects keyed by column."""

    rows: list[dict[str, Any]]
    row_count: int
    tables: list[str]


class EventTypes(msgspec.Struct):
    """GET /v1/schemas."""

    event_types: list[str]


class Health(msgspec.Struct):
    """GET /healthz."""

    status: str


class Readiness(msgspec.Struct):
    """GET /readyz (200 ready, 503 not): the gateway's checks, each configured service's /readyz answer
    (with its lag), and what it still waits for (failed checks, services, markets without a book or a
    last trade, as `venue:symbol`)."""

    ready: bool
    checks: dict[str, Any]
    services: dict[str, dict[str, Any]]
    waiting_for: dict[str, list[str]]


@dataclass(frozen=True)
class Param:
    """A query parameter of a route."""

    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Route:
    """One documented operation; `roles` None means public, () any signed-in user."""

    method: str
    path: str
    summary: str
    status: int
    answer: type | None = None
    body: type | None = None
    roles: tuple[str, ...] | None = ()
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    headers: tuple[Param, ...] = ()


_STR = {"type": "string"}
ACCOUNT = Param("account", _STR, "Only this account (must be one of yours unless you have role risk or admin).")
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
              f"At most this many rows (default {DEFAULT_LIMIT}).")
AS_OF = Param("as_of", _STR, "A past moment: ns since epoch, or ISO-8601 with a zone; rebuilt from the WAL.")
CAPITAL = Param("capital", {"type": "number", "exclusiveMinimum": 0},
                "Capital the daily P&L is a return on (required).")
DATE = Param("date", {"type": "string", "format": "date"}, "Only this UTC day, YYYY-MM-DD (required for daily).")
READERS = ("viewer", "trader", "risk", "admin")
IDEMPOTENCY = Param(IDEMPOTENCY_HEADER, {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                    "Makes a retry one order: without client_order_id in the body, the gateway derives the "
                    "client_order_id from this key (per user), so the same body sent again with the same key "
                    "answers the same order_id with duplicate true; the same key with a different order is 422.")
ROUTES: list[Route] = [
    Route("post", "/v1/auth/login", "Log in with password and TOTP; returns a 12 h JWT", 200, LoginResponse,
          LoginRequest, None, errors=(401,)),
    Route("post", "/v1/auth/logout", "Revoke the caller's token", 200, Revoked),
    Route("get", "/v1/auth/me", "The caller's identity, roles and accounts", 200, Identity),
    Route("post", "/v1/auth/users", "Enrol a user; the answer carries the TOTP provisioning URI once", 201, Enrolled,
          NewUser, ("admin",)),
    Route("get", "/v1/auth/users", "Every user with roles, accounts and whether disabled", 200, UserList,
          roles=("admin",)),
    Route("post", "/v1/auth/users/{name}/disable", "Disable a user and revoke their tokens on every gateway", 200,
          Disabled, roles=("admin",)),
    Route("post", "/v1/auth/revoke", "Revoke one token (token_id) or every token of a user, on every gateway", 200,
          Revoked, RevokeRequest, ("admin",)),
    Route("get", "/v1/auth/sessions", "Live tokens (neither expired nor revoked): ids, holders, times", 200,
          SessionList, roles=("admin",)),
    Route("post", "/v1/orders", "Submit an order intent (acknowledged once in the WAL)", 202, OrderAccepted,
          OrderIntent, ("trader", "admin"), errors=(422, 503, 504), headers=(IDEMPOTENCY,)),
    Route("get", "/v1/orders", "Parent orders, newest first", 200, OrderList, roles=READERS,
          query=(Param("status", _STR, "Only orders in this state."), Param("symbol", _STR, "Only this symbol."),
                 ACCOUNT, LIMIT), errors=(503,)),
    Route("get", "/v1/orders/{order_id}", "One order: state, fills, average price, decision, children", 200,
          OrderDetail, roles=READERS, query=(ACCOUNT,), errors=(503,)),
    Route("delete", "/v1/orders/{order_id}", "Cancel a working order", 202, OrderAccepted, roles=("trader", "admin"),
          query=(Param("account", _STR, "The order's account (needed when you have several)."),), errors=(503, 504)),
    Route("get", "/v1/fills", "Executions, newest first", 200, FillList, roles=READERS,
          query=(Param("symbol", _STR, "Only this symbol."), ACCOUNT, LIMIT), errors=(503,)),
    Route("get", "/v1/decisions", "Risk decisions, newest first, with the checks that failed", 200, DecisionList,
          roles=READERS, query=(Param("symbol", _STR, "Only this symbol."),
                                Param("accepted", {"type": "string", "enum": ["true", "false"]},
                                      "Only accepted (true) or refused (false) intents."), ACCOUNT, LIMIT),
          errors=(503,)),
    Route("get", "/v1/positions", "Positions with marks and P&L, now or as of a past moment", 200, PositionList,
          roles=READERS, query=(AS_OF, ACCOUNT), errors=(503,)),
    Route("get", "/v1/pnl", "P&L time series per account, now or as of a past moment", 200, PnlSeries,
          roles=READERS, query=(AS_OF, ACCOUNT, LIMIT), errors=(503,)),
    Route("get", "/v1/candles", "OHLCV bars, oldest first (the newest `limit`)", 200, CandleList, roles=READERS,
          query=(Param("symbol", _STR, "Only this symbol."), Param("interval", _STR, "Only this interval, e.g. 1m."),
                 Param("venue", _STR, "Only this venue."), ACCOUNT, LIMIT), errors=(503,)),
    Route("get", "/v1/book/{venue}/{symbol}", "The latest book top", 200, TopRow, roles=READERS, query=(ACCOUNT,),
          errors=(503,)),
    Route("get", "/v1/depth", "The order books the gateway holds (from the book events on the bus)", 200, BookList,
          roles=READERS),
    Route("get", "/v1/depth/{venue}/{symbol}", "Depth ladder: the best levels of each side, best first", 200, Depth,
          roles=READERS, query=(Param("levels", {"type": "integer", "minimum": 1, "maximum": MAX_LEVELS},
                                      f"Levels per side (default {DEFAULT_LEVELS})."),)),
    Route("get", "/v1/audit/orders/{order_id}", "Every event of an order in log order, with WAL positions", 200,
          AuditTrail, roles=READERS, query=(ACCOUNT,), errors=(503,)),
    Route("post", "/v1/query", "Read-only SQL (one SELECT) over the caller's visible projection tables", 200,
          QueryAnswer, QueryRequest, READERS, query=(ACCOUNT,), errors=(503,)),
    Route("get", "/v1/reports/metrics", "Return metrics of an account's daily net P&L on a capital", 200,
          MetricsAnswer, roles=READERS, query=(ACCOUNT, CAPITAL), errors=(404, 503)),
    Route("get", "/v1/reports/tearsheet", "Self-contained HTML tear sheet of an account (opens offline)", 200,
          roles=READERS, query=(ACCOUNT, CAPITAL), errors=(404, 503)),
    Route("get", "/v1/reports/tca", "TCA per algorithm and venue from completed parent orders", 200, TcaAnswer,
          roles=READERS, query=(ACCOUNT, DATE), errors=(503,)),
    Route("get", "/v1/reports/blotter", "Trade blotter: the newest fills, oldest first, with price, fee, venue", 200,
          BlotterAnswer, roles=READERS, query=(ACCOUNT, DATE, LIMIT), errors=(503,)),
    Route("get", "/v1/reports/daily", "Daily report per account: fills, turnover, P&L, fees, TCA (UTC day)", 200,
          DailyAnswer, roles=READERS, query=(ACCOUNT, DATE), errors=(503,)),
    Route("post", "/v1/portfolio/targets", "Set target weights for an account (the portfolio manager rebalances)",
          202, TargetsAccepted, TargetsRequest, ("trader", "admin"), errors=(503, 504)),
    Route("post", "/v1/portfolio/rebalance/preview", "The orders a rebalance to these weights would send now",
          200, RebalancePreview, TargetsRequest, roles=READERS, errors=(503,)),
    Route("post", "/v1/risk/killswitch", "Engage or release the kill switch", 202, OrderAccepted, KillSwitchRequest,
          ("risk", "admin"), errors=(503, 504)),
    Route("get", "/v1/ws", "WebSocket stream of bus events filtered by subject patterns (see description)", 101,
          roles=READERS, query=(Param("token", _STR, "The access token, for browsers that cannot set the "
                                      "Authorization header on a WebSocket."),)),
    Route("get", "/v1/schemas", "Names of every event type", 200, EventTypes, roles=None),
    Route("get", "/v1/schemas/{event_type}", "JSON Schema of one event type", 200, roles=None),
    Route("get", "/", "The operator dashboard page (HTML; its assets are under /static/)", 200, roles=None),
    Route("get", "/healthz", "Liveness", 200, Health, roles=None),
    Route("get", "/readyz", "Readiness (bus connected, projections caught up)", 200, Readiness, roles=None,
          errors=(503,)),
    Route("get", "/metrics", "Prometheus metrics (text exposition format)", 200, roles=None),
]
_ERRORS = {400: "invalid request (the detail names the field)", 401: "no valid token", 403: "not allowed",
           404: "not found", 413: "body too large",
           422: "the Idempotency-Key was first used for a different order", 429: "rate limited (see Retry-After)",
           503: "a dependency (bus, projections) is not available", 504: "published but not yet durable"}
# Shown for /v1/ws: the protocol after the upgrade, which OpenAPI cannot describe by itself.
WS_PROTOCOL = (routes_ws.__doc__ or "").split("Protocol (JSON text frames both ways):", 1)[-1].split("Fan-out:")[0]


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method}_{route.path}"
                                 .replace("/", "_").replace("{", "").replace("}", "").strip("_")}
    parameters = [{"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in route.path.split("/") if name.startswith("{")]
    parameters += [{"name": p.name, "in": "query", "required": False, "schema": p.schema,
                    "description": p.description} for p in route.query]
    parameters += [{"name": p.name, "in": "header", "required": False, "schema": p.schema,
                    "description": p.description} for p in route.headers]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
    success: dict[str, Any] = {"description": "switching protocols" if route.status == 101 else "success"}
    if route.answer is not None:
        success["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.answer.__name__}"}}}
    responses: dict[str, Any] = {str(route.status): success}
    public = route.roles is None
    codes = [400, *([] if public else [401, 403]), *([404] if "{" in route.path else []),
             *([413] if route.body else []), 429]
    for code in [*codes, *route.errors]:
        responses[str(code)] = {"description": _ERRORS[code], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    operation["responses"] = responses
    if not public:
        operation["security"] = [{"bearer": []}]
        if route.roles:
            operation["description"] = f"Roles: {', '.join(route.roles)}."
    if route.path == "/v1/ws":
        operation["description"] = operation.get("description", "") + "\n" + WS_PROTOCOL
    return operation


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document once, every body and answer schema from its Struct."""
    types = {r.body for r in ROUTES if r.body} | {r.answer for r in ROUTES if r.answer}
    types |= {ErrorBody, routes_ws.ClientMessage, routes_ws.StreamedEvent}
    _, components = msgspec.json.schema_components(sorted(types, key=lambda t: t.__name__),
                                                   ref_template="#/components/schemas/{name}")
    intent = dict(components["OrderIntent"])
    # Over HTTP the gateway fills id and ts, and makes a client_order_id when the body has none.
    intent["required"] = [f for f in intent.get("required", []) if f not in ("type", "id", "ts", "client_order_id")]
    components["OrderIntent"] = intent
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ShrivenQuant gateway", "version": "1"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


async def openapi(_request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(openapi_document())


async def schema_index(_request: web.Request) -> web.Response:
    """GET /v1/schemas: every event type name."""
    return web.json_response({"event_types": sorted(all_schemas())})


async def schema_one(request: web.Request) -> web.Response:
    """GET /v1/schemas/{event_type}: the JSON Schema of one event type."""
    name = request.match_info["event_type"]
    event_type = EVENT_TYPES_BY_NAME.get(name)
    if event_type is None:
        raise not_found(f"event_type {name!r} is not one of {', '.join(sorted(EVENT_TYPES_BY_NAME))}")
    return web.json_response(event_schema(event_type))


def register(app: web.Application) -> None:
    """Add the schema routes."""
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/schemas", schema_index)
    app.router.add_get("/v1/schemas/{event_type}", schema_one)
