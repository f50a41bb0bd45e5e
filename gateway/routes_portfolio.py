"""Portfolio over HTTP: set target weights (published for the portfolio manager) and preview a rebalance."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated

import msgspec
from aiohttp import web

from events.bus import outgoing
from events.ids import new_event_id
from events.portfolio import RebalanceProposed, TargetWeightsSet
from events.subjects import token
from events.trading import OrderIntent
from gateway.auth import authenticate, require_account
from gateway.errors import ApiError, bad_request
from gateway.routes_auth import read_json
from gateway.routes_orders import publish_durably
from gateway.state import GATEWAY
from processors.portfolio.rebalance import RebalanceConfig, RebalanceRefused, rebalance

Weight = Annotated[float, msgspec.Meta(ge=-10, le=10)]


class TargetsRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/portfolio/targets and /v1/portfolio/rebalance/preview."""

    account: str
    weights: dict[str, Weight]
    method: str = "manual"
    cash: Decimal = Decimal(0)
    drift_threshold: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.01
    min_trade_notional: Decimal = Decimal(0)


class PreviewTrade(msgspec.Struct):
    """One order the rebalance would send."""

    symbol: str
    side: str
    quantity: Decimal
    client_order_id: str


class RebalancePreview(msgspec.Struct):
    """What a rebalance would do now, priced at the projections' marks; nothing is published."""

    account: str
    equity_cash: Decimal
    drift_threshold: float
    trades: list[PreviewTrade]
    prices: dict[str, Decimal]


class TargetsAccepted(msgspec.Struct):
    """202 answer: the TargetWeightsSet event and where it landed."""

    event_id: str
    stream: str
    stream_seq: int
    duplicate: bool
    durable: bool


_targets_decoder = msgspec.json.Decoder(TargetsRequest)
_json = msgspec.json.Encoder(decimal_format="string")


def _validated(body: TargetsRequest) -> TargetsRequest:
    try:
        token("account", body.account)
        for symbol in body.weights:
            token(f"weights.{symbol}", symbol)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    if not body.cash.is_finite() or body.cash < 0:
        raise bad_request(f"cash {body.cash} must be a finite amount, not negative")
    return body


async def set_targets(request: web.Request) -> web.Response:
    """POST /v1/portfolio/targets (trader, admin): publish TargetWeightsSet for the portfolio manager."""
    claims = await authenticate(request, "trader", "admin")
    body = await read_json(request, _targets_decoder)
    assert isinstance(body, TargetsRequest)
    _validated(body)
    await require_account(request, claims, body.account)
    event = TargetWeightsSet(id=new_event_id(), ts=time.time_ns(), account=body.account, weights=body.weights,
                             method=body.method)
    outcome = await publish_durably(request.app[GATEWAY], outgoing(event))
    answer = msgspec.convert({"event_id": event.id, **outcome}, TargetsAccepted)
    return web.Response(body=_json.encode(answer), status=202, content_type="application/json")


async def preview_rebalance(request: web.Request) -> web.Response:
    """POST /v1/portfolio/rebalance/preview: the orders a rebalance to these weights would send, not sent."""
    claims = await authenticate(request, "viewer", "trader", "risk", "admin")
    body = await read_json(request, _targets_decoder)
    assert isinstance(body, TargetsRequest)
    _validated(body)
    await require_account(request, claims, body.account)
    projections = request.app[GATEWAY].projections
    if projections is None:
        raise ApiError(503, "unavailable", "projections are not running in this gateway")
    state = projections.state
    positions = {symbol: p.quantity for (account, symbol), p in state.positions.items() if account == body.account}
    prices = {symbol: mark for symbol, (mark, _) in state.marks.items()}
    target = TargetWeightsSet(id=new_event_id(), ts=time.time_ns(), account=body.account, weights=body.weights,
                              method=body.method)
    config = RebalanceConfig(drift_threshold=body.drift_threshold, min_trade_notional=body.min_trade_notional)
    try:
        events = rebalance(target, positions, prices, body.cash, config)
    except RebalanceRefused as exc:
        raise bad_request(str(exc), "rebalance_refused") from exc
    trades = [PreviewTrade(symbol=e.symbol, side=e.side, quantity=e.quantity, client_order_id=e.client_order_id)
              for e in events if isinstance(e, OrderIntent)]
    assert any(isinstance(e, RebalanceProposed) for e in events)
    used = {symbol: prices[symbol] for symbol in set(body.weights) | set(positions) if symbol in prices}
    preview = RebalancePreview(account=body.account, equity_cash=body.cash, drift_threshold=body.drift_threshold,
                               trades=trades, prices=used)
    return web.Response(body=_json.encode(preview), content_type="application/json")


def register(app: web.Application) -> None:
    """Add the portfolio routes."""
    app.router.add_post("/v1/portfolio/targets", set_targets)
    app.router.add_post("/v1/portfolio/rebalance/preview", preview_rebalance)
