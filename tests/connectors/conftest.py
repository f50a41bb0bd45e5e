"""Connector test helpers: serve a stand-in app on a free loopback port, and collect what reaches the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from events import Bus, decode
from events.codec import AnyEvent


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 at a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def collect(bus: Bus, subject: str = "sq.>") -> Callable[[], list[AnyEvent]]:
    """Start recording every event published under `subject`; returns a getter of what arrived so far."""
    seen: list[AnyEvent] = []

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(decode(msg.data))

    await bus.nc.subscribe(subject, cb=on_msg)
    return lambda: list(seen)
