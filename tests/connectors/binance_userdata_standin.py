"""The Binance stand-in's account: balances, trades, and the user-data stream (WebSocket API and listenKey).

Messages follow Binance's documentation: the `userDataStream.subscribe.signature` request and its
answer, events wrapped as `{"subscriptionId": n, "event": {...}}` (listenKey streams send them
bare), `executionReport` with every documented field, `outboundAccountPosition`, and the REST
answers of `openOrders`, `myTrades`, `account` and `userDataStream`. Events produced while no
client is subscribed are lost, as they are at the venue; only REST can tell of them afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tests.connectors.binance_standin import BinanceStandIn, _verify


def _ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Account:
    """One account at the stand-in: balances (free, locked), its trades, and the user-data connections."""

    venue: BinanceStandIn
    assets: dict[str, tuple[str, str]]                      # symbol -> (base, quote)
    balances: dict[str, list[Decimal]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[tuple[web.WebSocketResponse, int | None]] = field(default_factory=list)
    subscribes: int = 0
    refused_subscribes: int = 0
    listen_keys: set[str] = field(default_factory=set)
    keepalives: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)
    refuse_signature_method: bool = False
    refuse_connections: bool = False                         # user-data connections refused (venue unreachable)
    subscription_ids: int = 0

    def __post_init__(self) -> None:
        self.venue.account = self

    def balance(self, asset: str) -> Decimal:
        """Free plus locked."""
        free, locked = self.balances.get(asset, [Decimal(0), Decimal(0)])
        return free + locked

    async def push(self, event: dict[str, Any]) -> None:
        """Send an event to every subscribed connection; with none, it is lost."""
        if not self.sockets:
            self.lost.append(event)
            return
        for ws, subscription in list(self.sockets):
            body = event if subscription is None else {"subscriptionId": subscription, "event": event}
            await ws.send_str(json.dumps(body))

    async def _position(self, *assets: str) -> None:
        now = _ms()
        await self.push({"e": "outboundAccountPosition", "E": now, "u": now,
                         "B": [{"a": a, "f": f"{self.balances[a][0]:f}", "l": f"{self.balances[a][1]:f}"}
                               for a in assets]})

    def _execution(self, order: dict[str, Any], x: str, **fields: Any) -> dict[str, Any]:
        now = _ms()
        report = {"e": "executionReport", "E": now, "s": order["symbol"], "c": order["clientOrderId"],
                  "S": order["side"], "o": order["type"], "f": order["timeInForce"], "q": order["origQty"],
                  "p": order["price"], "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": x,
                  "X": order["status"], "r": "NONE", "i": order["orderId"], "l": "0.00000000",
                  "z": order["executedQty"], "L": "0.00000000", "n": "0", "N": None, "T": now, "t": -1,
                  "I": 8641984, "w": order["status"] in ("NEW", "PARTIALLY_FILLED"), "m": False, "M": False,
                  "O": order["transactTime"], "Z": order["cummulativeQuoteQty"], "Y": "0.00000000",
                  "Q": "0.00000000", "W": order["transactTime"], "V": "NONE"}
        return report | fields

    async def on_new(self, order: dict[str, Any]) -> None:
        """A new order: NEW on the stream, funds locked for a resting BUY; immediate fills as trades."""
        base, quote = self.assets[order["symbol"]]
        if order["status"] == "NEW" and order["side"] == "BUY":
            cost = Decimal(order["origQty"]) * Decimal(order["price"])
            self.balances[quote][0] -= cost
            self.balances[quote][1] += cost
        await self.push(self._execution(order, "NEW", X="NEW", z="0.00000000", Z="0.00000000"))
        for fill in order.get("fills", []):
            row = self._book_trade(order, fill["tradeId"], Decimal(fill["qty"]), Decimal(fill["price"]),
                                   Decimal(fill["commission"]), fill["commissionAsset"], locked=False)
            await self.push(self._execution(order, "TRADE", l=row["qty"], L=row["price"], n=row["commission"],
                                            N=row["commissionAsset"], t=row["id"], Y=row["quoteQty"], T=row["time"]))
        if order.get("fills"):
            await self._position(base, quote, "BNB")

    def _book_trade(self, order: dict[str, Any], trade_id: int, qty: Decimal, price: Decimal, fee: Decimal,
                    fee_asset: str, *, locked: bool) -> dict[str, Any]:
        base, quote = self.assets[order["symbol"]]
        for asset in (base, quote, fee_asset):
            self.balances.setdefault(asset, [Decimal(0), Decimal(0)])
        self.balances[base][0] += qty
        self.balances[quote][1 if locked else 0] -= qty * price
        self.balances[fee_asset][0] -= fee
        row = {"symbol": order["symbol"], "id": trade_id, "orderId": order["orderId"], "orderListId": -1,
               "price": f"{price:f}", "qty": f"{qty:f}", "quoteQty": f"{qty * price:f}", "commission": f"{fee:f}",
               "commissionAsset": fee_asset, "time": _ms(), "isBuyer": order["side"] == "BUY", "isMaker": locked,
               "isBestMatch": True}
        self.trades.append(row)
        return row

    async def fill(self, client_id: str, qty: str, *, commission: str, commission_asset: str = "BNB") -> None:
        """The resting order trades `qty` at its limit price: TRADE on the stream, then the new balances."""
        order = self.venue.orders[client_id]
        self.venue.trade_ids += 1
        quantity, price = Decimal(qty), Decimal(order["price"])
        row = self._book_trade(order, self.venue.trade_ids, quantity, price, Decimal(commission), commission_asset,
                               locked=True)
        executed = Decimal(order["executedQty"]) + quantity
        order["executedQty"] = f"{executed:f}"
        order["cummulativeQuoteQty"] = f"{Decimal(order['cummulativeQuoteQty']) + quantity * price:f}"
        order["status"] = "FILLED" if executed >= Decimal(order["origQty"]) else "PARTIALLY_FILLED"
        order["updateTime"] = row["time"]
        await self.push(self._execution(order, "TRADE", l=row["qty"], L=row["price"], n=row["commission"],
                                        N=commission_asset, t=row["id"], m=True, Y=row["quoteQty"], T=row["time"]))
        base, quote = self.assets[order["symbol"]]
        await self._position(*dict.fromkeys((base, quote, commission_asset)))

    async def on_cancel(self, order: dict[str, Any]) -> None:
        """A cancel: the locked rest is freed; CANCELED names the cancel's id in `c`, the order's in `C`."""
        _, quote = self.assets[order["symbol"]]
        if order["side"] == "BUY":
            rest = (Decimal(order["origQty"]) - Decimal(order["executedQty"])) * Decimal(order["price"])
            self.balances[quote][1] -= rest
            self.balances[quote][0] += rest
        await self.push(self._execution(order, "CANCELED", c=secrets.token_hex(11), C=order["clientOrderId"]))
        await self._position(quote)

    async def drop(self) -> None:
        """Close every user-data connection from the venue's side."""
        for ws, _ in list(self.sockets):
            await ws.close()


def _ws_signature_ok(venue: BinanceStandIn, params: dict[str, Any]) -> bool:
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
    expected = hmac.new(venue.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return (params.get("apiKey") == venue.api_key and hmac.compare_digest(str(params.get("signature", "")), expected)
            and abs(_ms() - int(params.get("timestamp", 0))) <= int(params.get("recvWindow", 5000)))


def add_routes(app: web.Application, account: Account) -> None:
    """Add the WebSocket API, listenKey stream and account REST routes to the stand-in's app."""
    venue = account.venue

    async def ws_api(request: web.Request) -> web.WebSocketResponse:
        if account.refuse_connections:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                if req.get("method") != "userDataStream.subscribe.signature" or account.refuse_signature_method:
                    account.refused_subscribes += 1
                    await ws.send_json({"id": req.get("id"), "status": 400,
                                        "error": {"code": -1100, "msg": "Illegal characters found in parameter "
                                                  "'method'; legal range is '^[a-zA-Z._]{1,50}$'."}})
                elif not _ws_signature_ok(venue, req.get("params", {})):
                    account.refused_subscribes += 1
                    await ws.send_json({"id": req.get("id"), "status": 400,
                                        "error": {"code": -1022, "msg": "Signature for this request is not valid."}})
                else:
                    account.subscribes += 1
                    subscription = account.subscription_ids
                    account.subscription_ids += 1
                    account.sockets.append((ws, subscription))
                    await ws.send_json({"id": req["id"], "status": 200, "result": {"subscriptionId": subscription},
                                        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                                        "intervalNum": 1, "limit": 6000, "count": 2}]})
        finally:
            account.sockets[:] = [(s, n) for s, n in account.sockets if s is not ws]
        return ws

    async def listen_key(request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != venue.api_key:
            return web.json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)
        if request.method == "PUT":
            account.keepalives += 1
            return web.json_response({})
        key = secrets.token_hex(32)
        account.listen_keys.add(key)
        return web.json_response({"listenKey": key})

    async def listen_stream(request: web.Request) -> web.WebSocketResponse:
        if request.match_info["key"] not in account.listen_keys:
            raise web.HTTPBadRequest(text="invalid listenKey")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        account.subscribes += 1
        account.sockets.append((ws, None))
        try:
            async for _ in ws:
                pass
        finally:
            account.sockets[:] = [(s, n) for s, n in account.sockets if s is not ws]
        return ws

    async def open_orders(request: web.Request) -> web.Response:
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        symbol = request.query.get("symbol")
        return web.json_response([{k: v for k, v in o.items() if k != "fills"} for o in venue.orders.values()
                                  if o["status"] in ("NEW", "PARTIALLY_FILLED") and symbol in (None, o["symbol"])])

    async def my_trades(request: web.Request) -> web.Response:
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        q = request.query
        return web.json_response([t for t in account.trades if t["symbol"] == q["symbol"]
                                  and ("orderId" not in q or str(t["orderId"]) == q["orderId"])])

    async def account_info(request: web.Request) -> web.Response:
        refused = _verify(venue, request)
        if refused is not None:
            return refused
        return web.json_response({"makerCommission": 15, "takerCommission": 15, "canTrade": True,
                                  "updateTime": _ms(), "accountType": "SPOT", "permissions": ["SPOT"],
                                  "balances": [{"asset": a, "free": f"{f:f}", "locked": f"{lk:f}"}
                                               for a, (f, lk) in account.balances.items()]})

    app.router.add_get("/ws-api/v3", ws_api)
    app.router.add_post("/api/v3/userDataStream", listen_key)
    app.router.add_put("/api/v3/userDataStream", listen_key)
    app.router.add_get("/ws/{key}", listen_stream)
    app.router.add_get("/api/v3/openOrders", open_orders)
    app.router.add_get("/api/v3/myTrades", my_trades)
    app.router.add_get("/api/v3/account", account_info)
