"""Waiting for the next thing unless asked to stop: the one idiom every long-running loop here needs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The stop event was set before the awaited thing arrived."""


async def unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event, *, timeout: float | None = None) -> T:
    """Await `awaitable`; cancel it and raise Stopped if `stop` is set first, or TimeoutError after `timeout`."""
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({work, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if work in done:
        return work.result()
    work.cancel()
    if stopper in done:
        raise Stopped
    raise TimeoutError
