"""The HTTP side every processor process serves: /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
# What /readyz reports beside `ready` (a processor's lag), so an operator or the gateway's health
# strip can see how far behind a service is, not only whether it is.
DETAILS: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("details")


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    ready = request.app[READY]()
    return web.json_response({"ready": ready, **request.app[DETAILS]()}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_service_http(port: int, ready: Callable[[], bool], host: str = "0.0.0.0",
                             details: Callable[[], dict[str, Any]] | None = None) -> web.AppRunner:
    """Serve the probes and metrics on `port` (0 picks a free one); returns the runner to clean up.

    `details` adds fields to the /readyz answer (e.g. `lag_events`); they must hold no secret.
    """
    app = web.Application()
    app[READY] = ready
    app[DETAILS] = details or dict
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the service actually listens on (useful when started with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("service is not listening")


__all__ = ["DETAILS", "READY", "bound_port", "start_service_http"]
