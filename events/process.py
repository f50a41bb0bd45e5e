"""What every ShrivenQuant process shares: common options, signals, the probes and metrics HTTP, and child
processes that die with their parent.

Every service (the recorder, each processor, the connectors, the gateway) starts the same way: parse
these options, stop on SIGINT or SIGTERM, and serve /healthz, /readyz and /metrics on its own port.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events.bus import Bus, resolve_url

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

NATS_URL_HELP = "NATS server URL(s), comma-separated (default $SQ_NATS_URL or nats://127.0.0.1:4222)"


def add_bus_arguments(parser: argparse.ArgumentParser) -> None:
    """--nats-url and --log-level: what every process that talks to the bus takes."""
    parser.add_argument("--nats-url", default=None, help=NATS_URL_HELP)
    parser.add_argument("--log-level", default="INFO", help="log level (default INFO)")


def add_probe_arguments(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """--port and --host of a service's /healthz, /readyz and /metrics."""
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port for /healthz, /readyz and /metrics (default {default_port})")
    parser.add_argument("--host", default="0.0.0.0",
                        help="address the probes listen on (default 0.0.0.0 for containers; `sq up` uses 127.0.0.1)")


def add_service_arguments(parser: argparse.ArgumentParser, *, default_port: int,
                          data_dir_help: str = "data directory (default var)") -> None:
    """The options of a service process: --nats-url, --data-dir, --port, --host, --log-level."""
    parser.add_argument("--nats-url", default=None, help=NATS_URL_HELP)
    parser.add_argument("--data-dir", default="var", help=data_dir_help)
    add_probe_arguments(parser, default_port=default_port)
    parser.add_argument("--log-level", default="INFO", help="log level (default INFO)")


async def connect_bus(args: argparse.Namespace, name: str) -> Bus:
    """The bus at --nats-url (or $SQ_NATS_URL), connected as `name`, with the ShrivenQuant streams in place."""
    bus = await Bus.connect(resolve_url(args.nats_url), name=name)
    await bus.ensure_streams()
    return bus


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


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


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()
_M_MMAP_THRESHOLD = -3
# Big buffers (a pickled snapshot, Arrow columns, Parquet pages) get their own mapping, returned on free.
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold() -> None:
    """At process start: keep glibc's mmap threshold fixed, so every big buffer goes back to the OS when freed.

    glibc otherwise raises the threshold to the largest block ever freed: after the first snapshot or
    checkpoint, later big buffers come from the heap, where one live allocation pins everything below
    it, and a process's memory creeps up with every snapshot. A fixed threshold turns that off (mallopt(3)).
    Nothing to do on other C libraries (musl, macOS).
    """
    if _LIBC is None:
        log.info("no glibc: the C allocator keeps its own defaults")
        return
    if _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.warning("mallopt refused the mmap threshold", extra={"bytes": MMAP_THRESHOLD_BYTES})


def trim_malloc() -> None:
    """Return the free pages of every glibc malloc arena to the OS (after a burst of frees)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def die_with_parent() -> None:
    """In a forked child before exec: ask Linux to SIGTERM us when the parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


__all__ = [
    "DETAILS", "READY", "add_bus_arguments", "add_probe_arguments", "add_service_arguments", "bound_port",
    "connect_bus", "die_with_parent", "fix_mmap_threshold", "start_service_http", "stop_on_signals", "trim_malloc",
]
