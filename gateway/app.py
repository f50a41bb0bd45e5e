"""The aiohttp application: middlewares, health and metrics, and route registration."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from gateway import routes_auth, routes_dashboard, routes_orders, routes_query, routes_schema, routes_ws
from gateway.auth import client_address
from gateway.depth import register as register_depth
from gateway.errors import Handler, json_errors, too_many_requests
from gateway.readiness import readiness
from gateway.routes_portfolio import register as register_portfolio
from gateway.routes_reports import register as register_reports
from gateway.state import GATEWAY, Gateway

REQUESTS = Counter("sq_gateway_requests_total", "HTTP requests by route and status", ["route", "status"])
LATENCY = Histogram("sq_gateway_request_seconds", "HTTP request latency by route", ["route"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
MAX_BODY_BYTES = 64 * 1024


@web.middleware
async def per_ip_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a client address that exceeds its token bucket with 429 and Retry-After."""
    gateway = request.app[GATEWAY]
    wait = gateway.ip_limits.take(client_address(request), time.monotonic())
    if wait:
        raise too_many_requests(wait, "too many requests from this address")
    return await handler(request)


@web.middleware
async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time each request by its route template (not its raw path, to bound label cardinality)."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    response = await handler(request)
    LATENCY.labels(route).observe(time.perf_counter() - started)
    REQUESTS.labels(route, str(response.status)).inc()
    return response


async def _metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    answer = await readiness(request.app[GATEWAY])
    return web.json_response(answer, status=200 if answer["ready"] else 503)


def create_app(gateway: Gateway) -> web.Application:
    """The gateway application with every route registered."""
    app = web.Application(middlewares=[instrument, json_errors, per_ip_limit], client_max_size=MAX_BODY_BYTES)
    app[GATEWAY] = gateway
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    routes_auth.register(app)
    routes_orders.register(app)
    routes_query.register(app)
    register_depth(app)
    register_reports(app)
    register_portfolio(app)
    routes_schema.register(app)
    routes_ws.register(app)
    routes_dashboard.register(app)

    async def follow_watermarks(app: web.Application) -> AsyncIterator[None]:
        if gateway.bus is not None:
            await gateway.watermarks.follow(gateway.bus)
        yield

    app.cleanup_ctx.append(follow_watermarks)
    return app
