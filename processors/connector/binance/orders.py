"""Binance spot signed REST orders: ChildOrder/ChildCancel to /api/v3/order, answers folded into ExecutionReports.

Requests are SIGNED (`signing.signed_query`: params, recvWindow, timestamp, then the HMAC-SHA256
signature) with the key in `X-MBX-APIKEY`. The child id is the `newClientOrderId` (a UUID is 36
characters, Binance's limit), so a retried placement is refused as a duplicate rather than
doubled, and cancels and status queries name the order by it. Every answer is folded by the
shared `ExecutionBook` (fills by trade id), so the user-data stream and REST never double a fill.
Answers that carry totals and no fills (cancel, status) are completed from `myTrades`, so every
fill is reported with its own price and commission. Before any request the venue's limits
(`limits.VenueLimiter`) are checked: a child over a limit is REJECTED naming the limit and is
never sent; a 429/418 answer blocks requests for its Retry-After.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp

from events.trading import ChildCancel, ChildOrder, ExecutionReport
from processors.connector.binance.executions import MS, ExecutionBook, Tracked, report
from processors.connector.binance.signing import signed_query
from processors.connector.credentials import BinanceCredentials
from processors.connector.limits import BINANCE_LIMITS, LimitRefusal, VenueLimiter

log = logging.getLogger(__name__)
_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK"}
# Request weights of the endpoints used (Binance spot REST docs).
WEIGHT = {("POST", "/api/v3/order"): 1, ("DELETE", "/api/v3/order"): 1, ("GET", "/api/v3/order"): 4,
          ("GET", "/api/v3/openOrders"): 6, ("GET", "/api/v3/myTrades"): 20, ("GET", "/api/v3/account"): 20,
          ("POST", "/api/v3/userDataStream"): 2, ("PUT", "/api/v3/userDataStream"): 2}
# Response headers in which Binance says what it has counted, by our limit names.
USED_HEADERS = {"X-MBX-USED-WEIGHT-1M": "weight", "X-MBX-ORDER-COUNT-10S": "orders",
                "X-MBX-ORDER-COUNT-1D": "orders_day"}


class BinanceOrderError(ValueError):
    """A child order cannot be sent to Binance, or Binance refused it; `field`, `value`, `reason` say why."""

    def __init__(self, field: str, value: object, reason: str, *, code: int | None = None) -> None:
        super().__init__(f"{field} {value} {reason}")
        self.field = field
        self.value = value
        self.reason = reason
        self.code = code


def order_params(child: ChildOrder) -> list[tuple[str, object]]:
    """The parameters of POST /api/v3/order for a child (before recvWindow, timestamp and signature)."""
    params: list[tuple[str, object]] = [("symbol", child.symbol), ("side", child.side)]
    if child.limit_price is None:
        params += [("type", "MARKET"), ("quantity", f"{child.quantity:f}")]
    else:
        tif = _TIF.get(child.time_in_force)
        if tif is None:
            raise BinanceOrderError("time_in_force", child.time_in_force, "is not supported by Binance (GTC, IOC, FOK)")
        params += [("type", "LIMIT"), ("timeInForce", tif), ("quantity", f"{child.quantity:f}"),
                   ("price", f"{child.limit_price:f}")]
    return [*params, ("newClientOrderId", child.child_id), ("newOrderRespType", "FULL")]


class BinanceOrders:
    """Signed REST calls for one API key: placement, cancel, status and gap recovery, within the venue's limits."""

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, creds: BinanceCredentials, *,
                 recv_window_ms: int = 5000, clock_ms: Callable[[], int] | None = None,
                 limiter: VenueLimiter | None = None, book: ExecutionBook | None = None) -> None:
        self.http = http
        self.rest_url = rest_url.rstrip("/")
        self.creds = creds
        self.recv_window_ms = recv_window_ms
        self.clock_ms = clock_ms or (lambda: time.time_ns() // MS)
        self.limiter = limiter or VenueLimiter("binance", BINANCE_LIMITS)
        self.book = book or ExecutionBook()

    @property
    def known(self) -> dict[str, Tracked]:
        """Children placed (or being placed), by child id."""
        return self.book.by_child

    def _charge(self, method: str, path: str) -> None:
        costs = {"weight": WEIGHT.get((method, path), 1)}
        if (method, path) == ("POST", "/api/v3/order"):
            costs |= {"orders": 1, "orders_day": 1}
        self.limiter.acquire(costs)

    async def request(self, method: str, path: str, params: list[tuple[str, object]], *,
                      signed: bool = True) -> Any:
        """One REST call within the limits: the JSON answer, or BinanceOrderError (LimitRefusal if not sent)."""
        self._charge(method, path)
        query = signed_query(params, secret=self.creds.api_secret, timestamp_ms=self.clock_ms(),
                             recv_window_ms=self.recv_window_ms) if signed else "&".join(f"{k}={v}" for k, v in params)
        url = f"{self.rest_url}{path}" + (f"?{query}" if query else "")
        async with self.http.request(method, url, headers={"X-MBX-APIKEY": self.creds.api_key}) as response:
            for header, name in USED_HEADERS.items():
                if header in response.headers and response.headers[header].isdigit():
                    self.limiter.observe(name, int(response.headers[header]))
            if response.status in (418, 429):
                self.limiter.back_off(response.status, response.headers.get("Retry-After"))
            try:
                body = await response.json(content_type=None)
            except ValueError as exc:
                raise BinanceOrderError("response", response.status, f"is not JSON: {exc}") from exc
        if response.status >= 400 or isinstance(body, dict) and "code" in body and "orderId" not in body:
            code = body.get("code") if isinstance(body, dict) else None
            msg = body.get("msg") if isinstance(body, dict) else str(body)[:200]
            raise BinanceOrderError(f"{method} {path}", f"HTTP {response.status} code {code}", str(msg), code=code)
        return body

    async def place(self, child: ChildOrder, *, recv_ts: int) -> list[ExecutionReport]:
        """Send a child order: ACK and any immediate fills, or one REJECTED report naming the reason or limit."""
        if child.child_id in self.known:
            return []  # placed before (a redelivery): its reports were published then
        tracked = self.book.track(child)
        try:
            body = await self.request("POST", "/api/v3/order", order_params(child))
        except (BinanceOrderError, LimitRefusal) as exc:
            if isinstance(exc, BinanceOrderError) and exc.code == -2010 and "Duplicate" in exc.reason:
                # Placed by an earlier run whose answer was lost: the order's own state is the answer.
                return await self.status(child.child_id)
            tracked.done = True
            return [report(tracked, "REJECTED", "rejected", recv_ts, reason=str(exc))]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return await self._placement_lost(tracked, type(exc).__name__, recv_ts)
        return self.book.on_order_answer(tracked, body)

    async def _placement_lost(self, tracked: Tracked, error: str, recv_ts: int) -> list[ExecutionReport]:
        """The placement may or may not have reached Binance: the order's state decides (now, or at recovery)."""
        try:
            return await self.status(tracked.child.child_id)
        except BinanceOrderError as exc:
            if exc.code != -2013:  # -2013: Binance has no such order, so it was never placed
                raise
            tracked.done = True
            return [report(tracked, "REJECTED", "rejected", recv_ts,
                           reason=f"placement failed ({error}) and Binance has no such order")]
        except (aiohttp.ClientError, TimeoutError, LimitRefusal):
            # Still unreachable: the child stays working; the user-data stream's next recovery settles it.
            log.warning("binance placement answer lost; its state is asked at the next recovery",
                        extra={"child_id": tracked.child.child_id, "error": error})
            return []

    async def cancel(self, cancel: ChildCancel) -> list[ExecutionReport]:
        """Cancel a working child by its client order id: any fills not yet reported, then CANCELLED."""
        tracked = self.known.get(cancel.child_id)
        if tracked is None:
            raise BinanceOrderError("child_id", cancel.child_id, "is not an order this connector placed")
        body = await self.request("DELETE", "/api/v3/order",
                                  [("symbol", tracked.child.symbol), ("origClientOrderId", cancel.child_id)])
        return await self._settle(tracked, body)

    async def status(self, child_id: str) -> list[ExecutionReport]:
        """Query a child's order and report whatever changed since we last heard."""
        tracked = self.known.get(child_id)
        if tracked is None:
            raise BinanceOrderError("child_id", child_id, "is not an order this connector placed")
        body = await self.request("GET", "/api/v3/order",
                                  [("symbol", tracked.child.symbol), ("origClientOrderId", child_id)])
        return await self._settle(tracked, body)

    async def _settle(self, tracked: Tracked, body: dict[str, Any]) -> list[ExecutionReport]:
        """Fold an answer carrying totals: fetch the order's trades first when it shows fills we have not seen."""
        reports = self.book.ack(tracked, body.get("orderId"), int(body.get("updateTime") or
                                                                  body.get("transactTime") or 0) * MS)
        if Decimal(str(body.get("executedQty") or "0")) > tracked.cum:
            reports += await self.trades_of(tracked)
        return reports + self.book.on_order_answer(tracked, body, ack=False)

    async def trades_of(self, tracked: Tracked) -> list[ExecutionReport]:
        """The order's fills from GET /api/v3/myTrades, each reported once (by trade id)."""
        if tracked.venue_order_id is None:
            return []
        rows = await self.request("GET", "/api/v3/myTrades", [("symbol", tracked.child.symbol),
                                                              ("orderId", tracked.venue_order_id)])
        reports: list[ExecutionReport] = []
        for row in sorted(rows, key=lambda r: int(r["id"])):
            reports += self.book.on_my_trade(row)
        return reports

    async def recover(self) -> list[ExecutionReport]:
        """After a gap in the user-data stream: what happened to every working child while we were away, once."""
        reports: list[ExecutionReport] = []
        working = self.book.working()
        open_ids: set[str] = set()
        for symbol in sorted({t.child.symbol for t in working}):
            rows = await self.request("GET", "/api/v3/openOrders", [("symbol", symbol)])
            open_ids |= {str(row["orderId"]) for row in rows}
        for tracked in working:
            if tracked.venue_order_id is None or tracked.venue_order_id not in open_ids:
                # Not resting any more (or its placement answer was lost): the order's own answer says why.
                try:
                    reports += await self.status(tracked.child.child_id)
                except BinanceOrderError as exc:
                    if exc.code != -2013:  # -2013: the order does not exist, so it was never placed
                        raise
                    reports += self.book.final(tracked, "REJECTED", self.clock_ms() * MS, "order does not exist at Binance")
            else:
                reports += await self.trades_of(tracked)
        return reports

    async def balances(self) -> dict[str, Any]:
        """GET /api/v3/account: the account's balances (free + locked per asset) and update time."""
        return await self.request("GET", "/api/v3/account", [("omitZeroBalances", "false")])


__all__ = ["BinanceOrderError", "BinanceOrders", "USED_HEADERS", "WEIGHT", "order_params"]
