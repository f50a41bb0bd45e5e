"""What the gateway's /readyz waits for: the bus, the projections, and (when configured) a tradable market and services.

Ready means tradable. Besides its own checks (bus connected, projections caught up and current),
a gateway can be told which markets must be tradable and which services must be ready before it
calls itself ready — `sq up` does this for the demo, so that a MARKET order placed the moment it
says "up" can fill:

- `books`: (venue, symbol) pairs that need a two-sided book top (a mid: risk's reference price,
  and liquidity for the simulated venue to take);
- `trades`: (venue, symbol) pairs that need a last trade;
- `services`: name → URL of a service's `/readyz`; each must answer 200. Their answers (lag
  included) are passed through, so the dashboard's health strip shows them.

The answer lists what is still missing (`waiting_for`), so an operator sees why it is not ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.state import Gateway, Market

SERVICE_TIMEOUT_S = 1.0                  # a service slower than this to answer its probe is not ready


def parse_market(text: str) -> Market:
    """`VENUE:SYMBOL` (the form of `--ready-book` / `--ready-trade`) as a (venue, symbol) pair."""
    venue, sep, symbol = text.partition(":")
    if not sep or not venue or not symbol:
        raise ValueError(f"market {text!r} must be VENUE:SYMBOL, e.g. binance:NKNUSDT")
    return venue, symbol


def parse_service(text: str) -> tuple[str, str]:
    """`NAME=URL` (the form of `--ready-service`) as a (name, readyz URL) pair."""
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"service {text!r} must be NAME=http://HOST:PORT/readyz")
    return name, url


def missing_markets(gateway: Gateway) -> dict[str, list[str]]:
    """The configured markets without a two-sided book top or without a last trade, as `venue:symbol`."""
    config = gateway.config.readiness
    projections = gateway.projections
    tops = projections.state.tops if projections is not None else {}
    marks = projections.state.marks if projections is not None else {}
    books = [f"{venue}:{symbol}" for venue, symbol in config.books
             if (top := tops.get((venue, symbol))) is None or top.bid_price is None or top.ask_price is None]
    # The projections mark a symbol by its last trade on any venue; the demo has one market venue.
    trades = [f"{venue}:{symbol}" for venue, symbol in config.trades if symbol not in marks]
    return {"book": books, "last_trade": trades}


async def _probe(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """One service's /readyz answer, or why it could not be had."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=SERVICE_TIMEOUT_S)) as response:
            body = await response.json(content_type=None)
            answer = body if isinstance(body, dict) else {}
            return {**answer, "ready": response.status == 200 and answer.get("ready") is True}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"ready": False, "error": f"{type(exc).__name__}: {exc}"[:200]}


async def services(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """Each configured service's readiness (and lag, when it reports one), probed at once."""
    configured = gateway.config.readiness.services
    if not configured:
        return {}
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(_probe(session, url) for _, url in configured))
    return {name: answer for (name, _), answer in zip(configured, answers, strict=True)}


async def readiness(gateway: Gateway) -> dict[str, Any]:
    """The /readyz body: `ready`, the gateway's own checks, the services' answers and what is still missing."""
    checks: dict[str, object] = {"bus": gateway.bus is not None and gateway.bus.nc.is_connected}
    if gateway.sessions is not None:
        checks["revocations_followed"] = gateway.sessions.following
    if gateway.projections is not None:
        lag = gateway.projections.lag()
        checks["projections_caught_up"] = gateway.projections.caught_up.is_set()
        checks["projection_lag_events"] = lag
        checks["projections_current"] = lag < gateway.config.max_ready_lag
        if gateway.projections.history_missing:
            # Served, but without the history the broker dropped before this gateway could read it.
            checks["projection_history_missing_through"] = dict(gateway.projections.history_missing)
    informative = ("projection_lag_events", "projection_history_missing_through")
    own_ready = all(value for key, value in checks.items() if key not in informative)
    markets = missing_markets(gateway)
    probed = await services(gateway)
    waiting = {
        "checks": [key for key, value in checks.items() if key not in informative and not value],
        "services": [name for name, answer in probed.items() if not answer["ready"]],
        **markets,
    }
    ready = own_ready and not any(waiting.values())
    return {"ready": ready, "checks": checks, "services": probed, "waiting_for": waiting}


__all__ = ["missing_markets", "parse_market", "parse_service", "readiness", "services"]
