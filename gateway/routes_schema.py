"""The OpenAPI 3.1 document (generated from the event and request Structs) and the event JSON Schemas."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from aiohttp import web

from events.codec import EVENT_TYPES_BY_NAME
from events.schema import all_schemas, event_schema
from events.trading import OrderIntent
from gateway.errors import not_found
from gateway.routes_auth import LoginRequest, LoginResponse
from gateway.routes_orders import KillSwitchRequest


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


# (method, path, summary, request body type, success status, success type, roles or None for public)
ROUTES: list[tuple[str, str, str, type | None, int, type | None, tuple[str, ...] | None]] = [
    ("post", "/v1/auth/login", "Log in with password and TOTP; returns a 12 h JWT", LoginRequest, 200,
     LoginResponse, None),
    ("post", "/v1/auth/logout", "Revoke the caller's token", None, 200, None, ()),
    ("get", "/v1/auth/me", "The caller's identity, roles and accounts", None, 200, None, ()),
    ("post", "/v1/orders", "Submit an order intent (acknowledged once in the WAL)", OrderIntent, 202, OrderAccepted,
     ("trader", "admin")),
    ("delete", "/v1/orders/{order_id}", "Cancel a working order", None, 202, OrderAccepted, ("trader", "admin")),
    ("post", "/v1/risk/killswitch", "Engage or release the kill switch", KillSwitchRequest, 202, OrderAccepted,
     ("risk", "admin")),
    ("get", "/v1/schemas", "Names of every event type", None, 200, None, None),
    ("get", "/v1/schemas/{event_type}", "JSON Schema of one event type", None, 200, None, None),
    ("get", "/healthz", "Liveness", None, 200, None, None),
    ("get", "/readyz", "Readiness (bus connected, projections caught up)", None, 200, None, None),
    ("get", "/metrics", "Prometheus metrics", None, 200, None, None),
]
_ERRORS = {400: "invalid request (the detail names the field)", 401: "no valid token", 403: "not allowed",
           404: "not found", 413: "body too large", 429: "rate limited (see Retry-After)"}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document once."""
    bodies = {r[3] for r in ROUTES if r[3] is not None} | {r[5] for r in ROUTES if r[5] is not None} | {ErrorBody}
    _, components = msgspec.json.schema_components(sorted(bodies, key=lambda t: t.__name__),
                                                   ref_template="#/components/schemas/{name}")
    intent = dict(components["OrderIntent"])
    intent["required"] = [f for f in intent.get("required", []) if f not in ("type", "id", "ts")]
    components["OrderIntent"] = intent
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, status, answer, roles in ROUTES:
        operation: dict[str, Any] = {"summary": summary, "operationId": f"{method}_{path}".replace("/", "_")
                                     .replace("{", "").replace("}", "").strip("_")}
        parameters = [{"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in path.split("/") if name.startswith("{")]
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body.__name__}"}}}}
        success: dict[str, Any] = {"description": "success"}
        if answer is not None:
            success["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer.__name__}"}}}
        responses: dict[str, Any] = {str(status): success}
        for code, text in _ERRORS.items():
            if (code in (401, 403) and roles is None) or (code == 404 and "{" not in path):
                continue
            responses[str(code)] = {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        operation["responses"] = responses
        if roles is not None:
            operation["security"] = [{"bearer": []}]
            if roles:
                operation["description"] = f"Roles: {', '.join(roles)}."
        paths.setdefault(path, {})[method] = operation
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
