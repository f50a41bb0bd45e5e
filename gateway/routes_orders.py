"""Order intents and cancels over HTTP, and the kill switch; each is acknowledged once it is in the WAL."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from aiohttp import web
from nats.errors import Error as NatsError

from events.bus import Outgoing, PublishError, outgoing
from events.codec import complete_intent
from events.control import KillSwitchEngaged, KillSwitchReleased
from events.ids import derived_id, new_event_id
from events.subjects import token
from events.trading import CancelIntent, OrderIntent
from gateway.auth import audit, authenticate, require_account
from gateway.errors import ApiError, bad_request
from gateway.routes_auth import read_json
from gateway.state import GATEWAY, Gateway

_intent_decoder = msgspec.json.Decoder(OrderIntent)
# To add a client_order_id to a body that has none, it is decoded and encoded again: a JSON number
# stays its exact literal (a Decimal, written back as a number), never a binary float.
_raw_decoder = msgspec.json.Decoder(float_hook=Decimal)
_raw_encoder = msgspec.json.Encoder(decimal_format="number")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
# What a retry under the same Idempotency-Key must repeat; a different value means a different order.
# (The account is part of the intent id itself: the same key for another account is another order.)
_SAME_ORDER_FIELDS = ("symbol", "side", "quantity", "limit_price", "time_in_force")


class KillSwitchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/risk/killswitch: engage or release, for one account or (null) all."""

    engaged: bool
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    account: str | None = None


_killswitch_decoder = msgspec.json.Decoder(KillSwitchRequest)


async def publish_durably(gateway: Gateway, item: Outgoing) -> dict[str, object]:
    """Publish, then (when configured) wait until the recorder has the event in the WAL."""
    if gateway.bus is None:
        raise ApiError(503, "unavailable", "the gateway is not connected to the bus")
    try:
        # A client is waiting: give up (503) sooner than a processor would.
        ack = await gateway.bus.publish_encoded(item, budget_s=5.0)
    except PublishError as exc:
        raise ApiError(503, "unavailable", "the broker did not acknowledge the event; retrying with the same "
                                           "client_order_id (or id) is safe") from exc
    durable = True
    if gateway.config.durable_ack:
        durable = await gateway.watermarks.wait_for(ack.stream, ack.seq, gateway.config.durable_timeout_s)
        if not durable:
            raise ApiError(504, "not_durable",
                           f"published as {ack.stream} #{ack.seq} but not yet recorded in the WAL after "
                           f"{gateway.config.durable_timeout_s:.0f}s; retrying with the same id is safe")
    return {"stream": ack.stream, "stream_seq": ack.seq, "duplicate": bool(ack.duplicate), "durable": durable}


def http_client_order_id(subject: str, idempotency_key: str | None) -> str:
    """The client_order_id the gateway makes for an HTTP order sent without one.

    From an Idempotency-Key it is derived (per user), so a retry is the same intent id and JetStream
    drops the copy; without one it is fresh (time-ordered, so it sorts by creation).
    """
    if idempotency_key is None:
        return f"gw-{new_event_id()}"
    digest = hashlib.sha256(f"{subject}\0{idempotency_key}".encode()).hexdigest()[:40]
    return f"idem-{digest}"


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise bad_request(f"{IDEMPOTENCY_HEADER} has {len(key)} characters; it must be 1 to "
                          f"{MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return key


async def read_intent(request: web.Request, subject: str) -> OrderIntent:
    """The order intent in the body, with a client_order_id made by the gateway when the body has none."""
    raw = await request.read()
    body: Any = None
    try:
        body = _raw_decoder.decode(raw) if raw else None
    except msgspec.DecodeError:
        pass  # the intent decoder below reports the malformed JSON with its position
    if isinstance(body, dict) and body.get("client_order_id") is None:
        body["client_order_id"] = http_client_order_id(subject, _idempotency_key(request))
        raw = _raw_encoder.encode(body)
    if not raw:
        raise bad_request("the request body is empty; send JSON")
    try:
        intent = _intent_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError, ArithmeticError) as exc:
        raise bad_request(str(exc) or type(exc).__name__) from exc
    assert isinstance(intent, OrderIntent)
    return intent


async def _check_same_order(gateway: Gateway, intent: OrderIntent, key: str, stream: str, seq: int) -> None:
    """422 when an Idempotency-Key already names an order with a different symbol, side, size, price, TIF or algo.

    A duplicate's ack carries the first message's sequence: that stored intent is what the key named.
    """
    assert gateway.bus is not None
    try:
        stored = await gateway.bus.js.get_msg(stream, seq)
        first = _intent_decoder.decode(stored.data or b"")
    except (NatsError, msgspec.DecodeError, ValueError) as exc:
        raise ApiError(503, "unavailable", f"could not read back order {intent.id} ({stream} #{seq}) to compare "
                                          f"it with this retry: {type(exc).__name__}") from exc
    different = [name for name in _SAME_ORDER_FIELDS if getattr(first, name) != getattr(intent, name)]
    if first.algo_kind != intent.algo_kind or first.algo != intent.algo:
        different.append("algo")
    if different:
        raise ApiError(422, "idempotency_key_reused",
                       f"{IDEMPOTENCY_HEADER} {key!r} was first used for order {intent.id} with a different "
                       f"{', '.join(different)}; use a new key for a new order")


async def place_order(request: web.Request) -> web.Response:
    """POST /v1/orders: validate an order intent, publish it, and answer 202 with its id once durable.

    `client_order_id` is optional over HTTP: the gateway makes one (from the Idempotency-Key header
    when given, so a retry is one order) and returns it.
    """
    claims = await authenticate(request, "trader", "admin")
    key = _idempotency_key(request)
    intent = await read_intent(request, claims.subject)
    await require_account(request, claims, intent.account)
    # The id is derived from account + client order id when absent, so a retried POST is one order.
    completed = complete_intent(intent, time.time_ns())
    completed = msgspec.structs.replace(completed, correlation_id=completed.id)
    gateway = request.app[GATEWAY]
    outcome = await publish_durably(gateway, outgoing(completed))
    stream, seq = outcome["stream"], outcome["stream_seq"]
    if outcome["duplicate"] and key is not None:
        assert isinstance(stream, str) and isinstance(seq, int)
        await _check_same_order(gateway, completed, key, stream, seq)
    return web.json_response({"order_id": completed.id, "client_order_id": completed.client_order_id, **outcome},
                             status=202)


async def cancel_order(request: web.Request) -> web.Response:
    """DELETE /v1/orders/{id}: publish a cancel intent for the order (account from ?account= or the token)."""
    claims = await authenticate(request, "trader", "admin")
    order_id = request.match_info["order_id"]
    if not 1 <= len(order_id) <= 64:
        # Built directly, CancelIntent does not check EventId's bounds; every reader would dead-letter it.
        raise bad_request(f"order_id has {len(order_id)} characters; an order id has 1 to 64")
    account = request.query.get("account")
    if account is None:
        if len(claims.accounts) != 1:
            raise bad_request("account: pass ?account=… (you have access to several accounts)")
        account = claims.accounts[0]
    try:
        token("account", account)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    await require_account(request, claims, account)
    now = time.time_ns()
    cancel = CancelIntent(id=derived_id(order_id, f"cancel:{claims.subject}:{now}"), ts=now, account=account,
                          order_id=order_id, reason=f"cancelled over HTTP by {claims.subject}",
                          correlation_id=order_id)
    outcome = await publish_durably(request.app[GATEWAY], outgoing(cancel))
    return web.json_response({"order_id": order_id, "cancel_id": cancel.id, **outcome}, status=202)


async def kill_switch(request: web.Request) -> web.Response:
    """POST /v1/risk/killswitch (risk, admin): engage or release globally or for one account."""
    claims = await authenticate(request, "risk", "admin")
    body = await read_json(request, _killswitch_decoder)
    assert isinstance(body, KillSwitchRequest)
    if body.account is not None:
        try:
            token("account", body.account)
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
    event_type = KillSwitchEngaged if body.engaged else KillSwitchReleased
    event = event_type(id=new_event_id(), ts=time.time_ns(), account=body.account, actor=claims.subject,
                       reason=body.reason)
    outcome = await publish_durably(request.app[GATEWAY], outgoing(event))
    await audit(request, "killswitch", claims.subject, "engage" if body.engaged else "release", "success",
                f"account={body.account or 'all'}")
    return web.json_response({"event_id": event.id, "engaged": body.engaged, "account": body.account, **outcome},
                             status=202)


def register(app: web.Application) -> None:
    """Add the order and kill-switch routes."""
    app.router.add_post("/v1/orders", place_order)
    app.router.add_delete("/v1/orders/{order_id}", cancel_order)
    app.router.add_post("/v1/risk/killswitch", kill_switch)


