"""Binance spot signed REST orders: ChildOrder/ChildCancel to POST/DELETE/GET /api/v3/order, answers to ExecutionReports.

Requests are SIGNED (`signing.signed_query`: params, recvWindow, timestamp, then the HMAC-SHA256
signature) with the key in `X-MBX-APIKEY`. The child id is the `newClientOrderId` (a UUID is 36
characters, Binance's limit), so a retried placement is refused as a duplicate rather than
doubled, and cancels and status queries name the order by it. A FULL placement answer lists its
fills: each becomes a PARTIAL or FILLED report with the fill's own price, commission and asset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from events.ids import derived_id
from events.trading import ChildCancel, ChildOrder, ExecStatus, ExecutionReport
from processors.connectors.binance.parse import VENUE_SPOT
from processors.connectors.binance.signing import signed_query
from processors.connectors.credentials import BinanceCredentials

MS = 1_000_000
_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK"}


class BinanceOrderError(ValueError):
    """A child order cannot be sent to Binance, or Binance refused it; `field`, `value`, `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


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


@dataclass(frozen=True)
class _Known:
    child: ChildOrder
    reported_qty: Decimal = Decimal(0)


def _report(child: ChildOrder, status: ExecStatus, key: str, ts: int, **fields: Any) -> ExecutionReport:
    return ExecutionReport(id=derived_id(child.child_id, f"binance:{key}"), ts=ts, correlation_id=child.order_id,
                           causation_id=child.id, order_id=child.order_id, child_id=child.child_id,
                           account=child.account, venue=VENUE_SPOT, symbol=child.symbol, side=child.side,
                           status=status, **fields)


def reports_from_order(child: ChildOrder, body: dict[str, Any], *, already: Decimal = Decimal(0),
                       ack: bool = True) -> list[ExecutionReport]:
    """Reports for a Binance order answer: ACK, one per new fill, then CANCELLED/REJECTED for a final non-fill."""
    ts = int(body.get("transactTime") or body.get("updateTime") or body.get("time") or 0) * MS
    venue_id = str(body.get("orderId", ""))
    quantity = child.quantity
    common = {"venue_order_id": venue_id, "venue_ts": ts}
    out: list[ExecutionReport] = []
    if ack:
        out.append(_report(child, "ACK", "ack", ts, leaves_quantity=quantity, **common))
    cum = Decimal(0)
    fills = body.get("fills") or []
    for index, fill in enumerate(fills):
        qty, price = Decimal(str(fill["qty"])), Decimal(str(fill["price"]))
        cum += qty
        if cum <= already:
            continue  # reported before (a status query repeats the fills we know)
        status: ExecStatus = "FILLED" if cum >= quantity else "PARTIAL"
        out.append(_report(child, status, f"fill:{index}:{cum}", ts, last_quantity=qty, last_price=price,
                           cum_quantity=cum, leaves_quantity=max(quantity - cum, Decimal(0)),
                           fee=Decimal(str(fill.get("commission", "0"))), fee_currency=fill.get("commissionAsset"),
                           **common))
    executed = Decimal(str(body.get("executedQty", cum)))
    final = str(body.get("status", ""))
    if final in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED") and executed < quantity:
        kind: ExecStatus = "REJECTED" if final == "REJECTED" else "CANCELLED"
        out.append(_report(child, kind, final.lower(), ts, cum_quantity=executed,
                           reason=f"binance status {final}", **common))
    return out


class BinanceOrders:
    """Signed REST order calls for one API key, keeping the children it placed to map cancels and queries."""

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, creds: BinanceCredentials, *,
                 recv_window_ms: int = 5000, clock_ms: Callable[[], int] | None = None) -> None:
        self.http = http
        self.rest_url = rest_url.rstrip("/")
        self.creds = creds
        self.recv_window_ms = recv_window_ms
        self.clock_ms = clock_ms or (lambda: time.time_ns() // MS)
        self.known: dict[str, _Known] = {}

    async def _signed(self, method: str, params: list[tuple[str, object]]) -> dict[str, Any]:
        query = signed_query(params, secret=self.creds.api_secret, timestamp_ms=self.clock_ms(),
                             recv_window_ms=self.recv_window_ms)
        async with self.http.request(method, f"{self.rest_url}/api/v3/order?{query}",
                                     headers={"X-MBX-APIKEY": self.creds.api_key}) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError as exc:
                raise BinanceOrderError("response", response.status, f"is not JSON: {exc}") from exc
        if response.status >= 400 or not isinstance(body, dict) or "code" in body and "orderId" not in body:
            code = body.get("code") if isinstance(body, dict) else None
            msg = body.get("msg") if isinstance(body, dict) else str(body)[:200]
            raise BinanceOrderError(f"{method} /api/v3/order", f"HTTP {response.status} code {code}", str(msg))
        return body

    async def place(self, child: ChildOrder, *, recv_ts: int) -> list[ExecutionReport]:
        """Send a child order: ACK and any immediate fills, or one REJECTED report with Binance's reason."""
        try:
            body = await self._signed("POST", order_params(child))
        except BinanceOrderError as exc:
            return [_report(child, "REJECTED", "rejected", recv_ts, reason=str(exc))]
        reports = reports_from_order(child, body)
        self.known[child.child_id] = _Known(child, max((r.cum_quantity for r in reports), default=Decimal(0)))
        return reports

    async def cancel(self, cancel: ChildCancel) -> list[ExecutionReport]:
        """Cancel a working child by its client order id; the CANCELLED report (and any late fills)."""
        known = self.known.get(cancel.child_id)
        if known is None:
            raise BinanceOrderError("child_id", cancel.child_id, "is not an order this connector placed")
        body = await self._signed("DELETE", [("symbol", known.child.symbol), ("origClientOrderId", cancel.child_id)])
        return self._update(known, body)

    async def status(self, child_id: str) -> list[ExecutionReport]:
        """Query a child's order and report whatever changed since we last heard."""
        known = self.known.get(child_id)
        if known is None:
            raise BinanceOrderError("child_id", child_id, "is not an order this connector placed")
        body = await self._signed("GET", [("symbol", known.child.symbol), ("origClientOrderId", child_id)])
        return self._update(known, body)

    def _update(self, known: _Known, body: dict[str, Any]) -> list[ExecutionReport]:
        executed = Decimal(str(body.get("executedQty", "0")))
        reports: list[ExecutionReport] = []
        if executed > known.reported_qty and not body.get("fills"):
            # Query and cancel answers carry totals, not fills: the new part at its average price.
            quote = Decimal(str(body.get("cummulativeQuoteQty", "0")))
            new_qty = executed - known.reported_qty
            ts = int(body.get("updateTime") or body.get("transactTime") or 0) * MS
            status: ExecStatus = "FILLED" if executed >= known.child.quantity else "PARTIAL"
            reports.append(_report(known.child, status, f"fill:q:{executed}", ts, last_quantity=new_qty,
                                   last_price=(quote / executed) if executed else None, cum_quantity=executed,
                                   leaves_quantity=max(known.child.quantity - executed, Decimal(0)),
                                   venue_order_id=str(body.get("orderId", ""))))
        reports += reports_from_order(known.child, body, already=known.reported_qty, ack=False)
        self.known[known.child.child_id] = _Known(known.child, max(executed, known.reported_qty))
        return reports


__all__ = ["BinanceOrderError", "BinanceOrders", "order_params", "reports_from_order"]
