"""A local stand-in for Zerodha Kite speaking the documented Connect v3 protocol: login, TOTP, session, orders, ticker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyotp
from aiohttp import WSMsgType, web

INSTRUMENTS_CSV = (  # the documented columns of GET /instruments, a few real NSE rows
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
    "instrument_type,segment,exchange\n"
    "408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE\n"
    "738561,2885,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.05,1,EQ,NSE,NSE\n"
    "519937,2031,M&M,MAHINDRA & MAHINDRA,0,,0,0.05,1,EQ,NSE,NSE\n"
    "128083204,500209,INFY,INFOSYS,0,,0,0.05,1,EQ,BSE,BSE\n")
# An address nothing listens on: the client must read the request_token without following it.
REDIRECT_URL = "http://127.0.0.1:9/kite/redirect"


def pack_full(token: int, *, ltp: int, last_qty: int, volume: int, close: int, last_trade_time: int,
              exchange_ts: int, bids: list[tuple[int, int, int]], asks: list[tuple[int, int, int]]) -> bytes:
    """A 184-byte full-mode packet (prices in paise) built to the documented layout."""
    head = struct.pack(">11i", token, ltp, last_qty, ltp, volume, 100, 200, close, ltp + 100, ltp - 100, close)
    extra = struct.pack(">5i", last_trade_time, 0, 0, 0, exchange_ts)
    levels = [*bids, *([(0, 0, 0)] * (5 - len(bids))), *asks, *([(0, 0, 0)] * (5 - len(asks)))]
    depth = b"".join(struct.pack(">iih2x", qty, price, orders) for qty, price, orders in levels)
    return head + extra + depth


def message(*packets: bytes) -> bytes:
    """A binary WebSocket message: packet count, then each packet with its 2-byte length."""
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)


@dataclass
class KiteStandIn:
    """The venue's state: one user, issued tokens, orders, and the ticker connections."""

    user_id: str
    password: str
    totp_seed: str
    api_key: str
    api_secret: str
    logins: int = 0
    twofa_codes: list[str] = field(default_factory=list)
    request_ids: set[str] = field(default_factory=set)
    enctokens: set[str] = field(default_factory=set)
    request_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: list[Any] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    ws_connects: int = 0
    clock: Callable[[], datetime] | None = None        # the venue's time, for TOTP checks (None: real time)
    instruments_csv: str = INSTRUMENTS_CSV
    instrument_fetches: int = 0
    throttle: int = 0                                   # answer this many next order requests with HTTP 429
    hang_next_order: bool = False                       # accept the next order, then never answer
    drop_next_order: bool = False                       # never answer the next order, and never make it
    order_requests: int = 0

    def order_update(self, order_id: str, *, status: str, filled: int, average: str,
                     order_timestamp: str = "2026-12-04 09:24:25", secret: str | None = None) -> dict[str, Any]:
        """An order update as Kite documents it (postback and ticker `order` message), checksummed with `secret`."""
        order = self.orders[order_id]
        quantity = int(order["quantity"])
        checksum = hashlib.sha256(f"{order_id}{order_timestamp}{secret or self.api_secret}".encode()).hexdigest()
        return {"user_id": self.user_id, "unfilled_quantity": 0, "app_id": 1234, "checksum": checksum,
                "placed_by": self.user_id, "order_id": order_id, "exchange_order_id": "1000000001482421",
                "parent_order_id": None, "status": status, "status_message": None, "status_message_raw": None,
                "order_timestamp": order_timestamp, "exchange_update_timestamp": order_timestamp,
                "exchange_timestamp": order_timestamp, "variety": "regular", "exchange": order["exchange"],
                "tradingsymbol": order["tradingsymbol"], "instrument_token": 408065,
                "order_type": order["order_type"], "transaction_type": order["transaction_type"],
                "validity": order["validity"], "product": order["product"], "quantity": quantity,
                "disclosed_quantity": 0, "price": float(order.get("price") or 0), "trigger_price": 0,
                "average_price": float(average), "filled_quantity": filled, "pending_quantity": quantity - filled,
                "cancelled_quantity": 0, "market_protection": 0, "meta": {}, "tag": order.get("tag"),
                "guid": "84450X6vYAlZ6Ikxn"}

    def revoke_tokens(self) -> None:
        """Expire every access token (what happens at Kite each morning)."""
        self.access_tokens.clear()

    async def push(self, data: bytes | dict[str, Any]) -> None:
        """Send a binary tick message or a JSON text message to every ticker connection."""
        for ws in list(self.sockets):
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_str(json.dumps(data))


def _error(status: int, error_type: str, message_: str) -> web.Response:
    return web.json_response({"status": "error", "message": message_, "error_type": error_type}, status=status)


def _ok(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _authorised(venue: KiteStandIn, request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return (request.headers.get("X-Kite-Version") == "3"
            and header.removeprefix("token ").partition(":")[0] == venue.api_key
            and header.removeprefix("token ").partition(":")[2] in venue.access_tokens)


def make_app(venue: KiteStandIn) -> web.Application:
    """The aiohttp app serving login, connect, session, orders and the ticker WebSocket."""

    async def api_login(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("user_id") != venue.user_id or form.get("password") != venue.password:
            return _error(400, "InputException", "Invalid `user_id` or `password`.")
        request_id = secrets.token_hex(8)
        venue.request_ids.add(request_id)
        return _ok({"user_id": venue.user_id, "request_id": request_id, "twofa_type": "totp",
                    "twofa_types": ["totp"]})

    async def api_twofa(request: web.Request) -> web.Response:
        form = await request.post()
        code = str(form.get("twofa_value", ""))
        if form.get("request_id") not in venue.request_ids or form.get("twofa_type") != "totp":
            return _error(400, "InputException", "Invalid request_id or twofa_type.")
        if not pyotp.TOTP(venue.totp_seed).verify(code, for_time=venue.clock() if venue.clock else None,
                                                  valid_window=1):
            return _error(400, "TwoFAException", "Invalid TOTP.")
        venue.twofa_codes.append(code)
        venue.request_ids.discard(str(form["request_id"]))
        enctoken = secrets.token_hex(8)
        venue.enctokens.add(enctoken)
        response = _ok({"profile": {}})
        response.set_cookie("enctoken", enctoken)
        return response

    async def connect_login(request: web.Request) -> web.Response:
        if request.query.get("v") != "3" or request.query.get("api_key") != venue.api_key:
            return _error(400, "InputException", "Invalid api_key or version.")
        if request.cookies.get("enctoken") not in venue.enctokens:
            raise web.HTTPFound("/connect/unauthenticated")
        raise web.HTTPFound(f"/connect/finish?api_key={venue.api_key}&sess_id={secrets.token_hex(4)}")

    async def connect_finish(request: web.Request) -> web.Response:
        token = secrets.token_hex(12)
        venue.request_tokens.add(token)
        raise web.HTTPFound(f"{REDIRECT_URL}?action=login&type=login&status=success&request_token={token}")

    async def session_token(request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("request_token", ""))
        expected = hashlib.sha256(f"{venue.api_key}{token}{venue.api_secret}".encode()).hexdigest()
        if request.headers.get("X-Kite-Version") != "3":
            return _error(400, "InputException", "X-Kite-Version 3 is required.")
        if token not in venue.request_tokens or form.get("checksum") != expected:
            return _error(403, "TokenException", "Token is invalid or has expired.")
        venue.request_tokens.discard(token)
        venue.logins += 1
        access = secrets.token_hex(16)
        venue.access_tokens.add(access)
        return _ok({"user_id": venue.user_id, "access_token": access, "api_key": venue.api_key})

    async def place_order(request: web.Request) -> web.Response:
        venue.order_requests += 1
        if venue.throttle:
            venue.throttle -= 1
            return _error(429, "NetworkException", "Too many requests")
        if not _authorised(venue, request):
            return _error(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        form = dict(await request.post())
        missing = [name for name in ("tradingsymbol", "exchange", "transaction_type", "order_type", "quantity",
                                     "product", "validity") if not form.get(name)]
        if missing:
            return _error(400, "InputException", f"Missing {', '.join(missing)}.")
        if form["order_type"] == "LIMIT" and not form.get("price"):
            return _error(400, "InputException", "Price is required for LIMIT orders.")
        if form["tradingsymbol"] == "BADSYM":
            return _error(400, "InputException", "Invalid `tradingsymbol`.")
        if venue.drop_next_order:
            venue.drop_next_order = False
            await asyncio.sleep(3600)
        order_id = str(250_000_000_000_000 + len(venue.orders))
        venue.orders[order_id] = {**form, "order_id": order_id, "status": "OPEN"}
        if venue.hang_next_order:
            venue.hang_next_order = False
            await asyncio.sleep(3600)                   # the client times out; the order exists regardless
        return _ok({"order_id": order_id})

    async def list_orders(request: web.Request) -> web.Response:
        if not _authorised(venue, request):
            return _error(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        return _ok([{**o, "tag": o.get("tag")} for o in venue.orders.values()])

    async def cancel_order(request: web.Request) -> web.Response:
        if not _authorised(venue, request):
            return _error(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        order_id = request.match_info["order_id"]
        if order_id not in venue.orders:
            return _error(400, "InputException", "Order not found.")
        venue.orders[order_id]["status"] = "CANCELLED"
        return _ok({"order_id": order_id})

    async def ticker(request: web.Request) -> web.WebSocketResponse:
        if request.query.get("api_key") != venue.api_key or request.query.get("access_token") not in venue.access_tokens:
            raise web.HTTPForbidden(text="invalid token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        venue.ws_connects += 1
        venue.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    venue.subscriptions.append(json.loads(msg.data))
        finally:
            venue.sockets.remove(ws)
        return ws

    async def instruments(request: web.Request) -> web.Response:
        if not _authorised(venue, request):
            return _error(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        venue.instrument_fetches += 1
        return web.Response(text=venue.instruments_csv, content_type="text/csv")

    app = web.Application()
    app.router.add_get("/instruments", instruments)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/api/twofa", api_twofa)
    app.router.add_get("/connect/login", connect_login)
    app.router.add_get("/connect/finish", connect_finish)
    app.router.add_post("/session/token", session_token)
    app.router.add_post("/orders/regular", place_order)
    app.router.add_get("/orders", list_orders)
    app.router.add_delete("/orders/regular/{order_id}", cancel_order)
    app.router.add_get("/ws", ticker)
    return app


async def drop_ticker(venue: KiteStandIn) -> None:
    """Close every ticker connection from the server side (a dropped connection)."""
    await asyncio.gather(*(ws.close() for ws in list(venue.sockets)))
