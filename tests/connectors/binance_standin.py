"""A local stand-in for Binance spot: the combined stream replaying recorded messages, depth snapshots, signed orders.

Its books are kept independently (plain dicts) from the recorded REST snapshot plus every diff it
"emits" — sent, or deliberately dropped to make a gap, or lost while a connection is down — so
a snapshot fetched at any moment is what the real venue would serve then.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def recorded_ws(name: str = "cryptofeed_BINANCE.ws.1.0") -> list[str]:
    """The recorded combined-stream messages, as sent (the `ts: ` prefix and URL line removed)."""
    lines = (SAMPLES / name).read_text().splitlines()[1:]
    return [line.split(": ", 1)[1] for line in lines if ": " in line]


def recorded_snapshots(name: str = "cryptofeed_BINANCE.http.0.0") -> dict[str, dict[str, Any]]:
    """The recorded REST depth snapshots by symbol."""
    out = {}
    for line in (SAMPLES / name).read_text().splitlines():
        url, _, rest = line.partition(" -> ")
        if "symbol=" not in url:
            continue
        symbol = url.split("symbol=")[1].split("&")[0]
        out[symbol] = json.loads(rest.split(": ", 1)[1])
    return out


@dataclass
class TrueBook:
    """The venue's own book for one symbol."""

    last_update_id: int
    bids: dict[Decimal, str]
    asks: dict[Decimal, str]

    def apply(self, data: dict[str, Any]) -> None:
        """Apply a diff the venue emits (older than the book: nothing to do)."""
        if data["u"] <= self.last_update_id:
            return
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for price, size in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = size
        self.last_update_id = data["u"]

    def snapshot(self, limit: int) -> dict[str, Any]:
        """The REST depth answer at this moment."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {"lastUpdateId": self.last_update_id, "bids": [[f"{p:f}", s] for p, s in bids],
                "asks": [[f"{p:f}", s] for p, s in asks]}


@dataclass
class BinanceStandIn:
    """Stream script and venue state: which messages to drop, when to cut the connection, orders, keys."""

    api_key: str
    api_secret: str
    messages: list[str] = field(default_factory=recorded_ws)
    drop: set[int] = field(default_factory=set)          # message indices emitted but never sent (a gap)
    cut_after: int | None = None                         # close the first connection after this index
    lost_on_cut: int = 5                                 # messages emitted while the client is away
    inject: dict[int, str] = field(default_factory=dict)  # extra raw text sent before message index i
    books: dict[str, TrueBook] = field(default_factory=dict)
    position: int = 0
    sent: int = 0
    connects: int = 0
    snapshot_requests: list[str] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    signed_ok: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    order_requests: int = 0                              # POST /api/v3/order requests received
    throttle: list[tuple[int, str]] = field(default_factory=list)  # (status, Retry-After) answers to give next
    account: Any = None                                  # a binance_userdata_standin.Account, when trading
    trade_ids: int = 0
    hang_next_order: bool = False                        # accept the next order, then never answer (a lost reply)

    def __post_init__(self) -> None:
        for symbol, snap in recorded_snapshots().items():
            self.books[symbol] = TrueBook(snap["lastUpdateId"], {Decimal(p): s for p, s in snap["bids"]},
                                          {Decimal(p): s for p, s in snap["asks"]})

    def emit(self, raw: str) -> None:
        """The venue's book moves whether or not the client hears of it."""
        body = json.loads(raw)
        data = body["data"]
        if data.get("e") == "depthUpdate" and data["s"] in self.books:
            self.books[data["s"]].apply(data)


def _verify(venue: BinanceStandIn, request: web.Request) -> web.Response | None:
    """Check the API key, the signature over the exact query text, and the timestamp window."""
    if venue.throttle:  # the documented 429/418 answer, with Retry-After in seconds
        status, retry_after = venue.throttle.pop(0)
        return web.json_response({"code": -1003, "msg": "Too many requests; current limit of IP is 6000 request "
                                  "weight per 1 MINUTE."}, status=status, headers={"Retry-After": retry_after})
    if request.headers.get("X-MBX-APIKEY") != venue.api_key:
        return web.json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)
    text = request.query_string
    payload, _, signature = text.rpartition("&signature=")
    expected = hmac.new(venue.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."}, status=400)
    window = int(request.query.get("recvWindow", "5000"))
    if abs(time.time() * 1000 - int(request.query["timestamp"])) > window:
        return web.json_response({"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
                                 status=400)
    venue.signed_ok += 1
    return None


def make_app(venue: BinanceStandIn) -> web.Application:
    """The aiohttp app: /stream (combined WS), /api/v3/depth, and /api/v3/order (POST, DELETE, GET)."""

    async def stream(request: web.Request) -> web.WebSocketResponse:
        wanted = set(request.query.get("streams", "").split("/"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        venue.connects += 1
        first = venue.connects == 1
        while venue.position < len(venue.messages):
            index = venue.position
            raw = venue.messages[index]
            venue.position += 1
            if json.loads(raw)["stream"] not in wanted:
                continue
            venue.emit(raw)
            if index in venue.inject:
                await ws.send_str(venue.inject[index])
                venue.sent += 1
            if index not in venue.drop:
                await ws.send_str(raw)
                venue.sent += 1
            await asyncio.sleep(0.001)  # a live feed trickles: let the client's snapshot requests interleave
            if first and venue.cut_after is not None and index >= venue.cut_after:
                for _ in range(venue.lost_on_cut):  # the venue moves on while the client reconnects
                    if venue.position < len(venue.messages):
                        lost = venue.messages[venue.position]
                        venue.position += 1
                        if json.loads(lost)["stream"] in wanted:
                            venue.emit(lost)
                await ws.close()
                return ws
        venue.finished.set()
        async for _ in ws:  # stay open, idle, until the client leaves
            pass
        return ws

    async def depth(request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        limit = int(request.query.get("limit", "100"))
        if symbol not in venue.books:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if limit > 5000:
            return web.json_response({"code": -1100, "msg": "Illegal characters found in parameter 'limit'"},
                                     status=400)
        venue.snapshot_requests.append(symbol)
        return web.json_response(venue.books[symbol].snapshot(limit))

    async def new_order(request: web.Request) -> web.Response:
        venue.order_requests += 1
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        q = request.query
        client_id = q["newClientOrderId"]
        if client_id in venue.orders:
            return web.json_response({"code": -2010, "msg": "Duplicate order sent."}, status=400)
        book = venue.books[q["symbol"]]
        qty = Decimal(q["quantity"])
        best_ask = min(book.asks)
        fills = []
        if q["type"] == "MARKET" or (q["side"] == "BUY" and Decimal(q["price"]) >= best_ask):
            venue.trade_ids += 1
            fills = [{"price": f"{best_ask:f}", "qty": f"{qty:f}", "commission": "0.001", "commissionAsset": "BNB",
                      "tradeId": venue.trade_ids}]
        order = {"symbol": q["symbol"], "orderId": 1000 + len(venue.orders), "clientOrderId": client_id,
                 "transactTime": int(time.time() * 1000), "price": q.get("price", "0"), "origQty": q["quantity"],
                 "executedQty": f"{qty:f}" if fills else "0",
                 "cummulativeQuoteQty": f"{qty * best_ask:f}" if fills else "0",
                 "status": "FILLED" if fills else "NEW", "timeInForce": q.get("timeInForce", "GTC"),
                 "type": q["type"], "side": q["side"], "fills": fills}
        venue.orders[client_id] = order
        if venue.account is not None:
            await venue.account.on_new(order)
        if venue.hang_next_order:
            venue.hang_next_order = False
            await asyncio.sleep(3600)                    # the client times out; the order exists regardless
        return web.json_response(order)

    async def cancel_order(request: web.Request) -> web.Response:
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        order = venue.orders.get(request.query.get("origClientOrderId", ""))
        if order is None or order["status"] != "NEW":
            return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
        order["status"] = "CANCELED"
        if venue.account is not None:
            await venue.account.on_cancel(order)
        return web.json_response({k: v for k, v in order.items() if k != "fills"})

    async def query_order(request: web.Request) -> web.Response:
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        order = venue.orders.get(request.query.get("origClientOrderId", ""))
        if order is None:
            return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
        return web.json_response({**{k: v for k, v in order.items() if k != "fills"},
                                  "updateTime": order.get("updateTime", order["transactTime"])})

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/api/v3/depth", depth)
    app.router.add_post("/api/v3/order", new_order)
    app.router.add_delete("/api/v3/order", cancel_order)
    app.router.add_get("/api/v3/order", query_order)
    return app
