"""Kite orders: ChildOrder to the `/orders/regular` form, and Kite's responses and order updates to ExecutionReports.

Kite's order placement answers only with an `order_id` (an ACK); what happens next arrives as
order updates (postbacks, or `{"type": "order"}` text messages on the ticker WebSocket) carrying
the cumulative `filled_quantity` and `average_price`. A fill's own price is recovered exactly
from two successive averages. The mapping functions are pure; `KiteOrders` does the HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import aiohttp

from events.ids import derived_id
from events.trading import ChildCancel, ChildOrder, ExecStatus, ExecutionReport
from processors.connector.kite.session import KiteError, KiteSession, kite_json
from processors.connector.kite.ticker import IST
from processors.connector.limits import KITE_LIMITS, LimitRefusal, VenueLimiter

VENUE = "kite"
Product = Literal["CNC", "MIS", "NRML"]
_VALIDITY = {"GTC": "DAY", "DAY": "DAY", "IOC": "IOC"}
# Kite's `tag` is at most 20 alphanumeric characters: the child id's hex prefix identifies the child.
TAG_LENGTH = 20


class PlacementUnknown(RuntimeError):
    """A placement's answer was lost and Kite's order list could not be read: `child_id` may or may not be live."""

    def __init__(self, child_id: str, error: str) -> None:
        super().__init__(f"child {child_id}: placement answer lost ({error}) and GET /orders failed; "
                         "check the Kite order book for its tag")
        self.child_id = child_id
        self.error = error


class OrderMappingError(ValueError):
    """A child order cannot be expressed as a Kite order; `field`, `value` and `reason` say why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class KiteInstrument:
    """How one of our symbols is known at Kite: exchange, tradingsymbol and ticker instrument token."""

    symbol: str
    exchange: str = "NSE"
    tradingsymbol: str | None = None
    instrument_token: int | None = None


def child_tag(child_id: str) -> str:
    """The Kite `tag` that marks an order as this child's."""
    return child_id.replace("-", "")[:TAG_LENGTH]


def order_form(child: ChildOrder, instrument: KiteInstrument, *, product: Product = "CNC") -> dict[str, str]:
    """The form fields of POST /orders/regular for a child order."""
    if child.quantity != child.quantity.to_integral_value():
        raise OrderMappingError("quantity", child.quantity, "is fractional; Kite trades whole units")
    validity = _VALIDITY.get(child.time_in_force)
    if validity is None:
        raise OrderMappingError("time_in_force", child.time_in_force, "is not supported by Kite (GTC, DAY, IOC)")
    form = {"tradingsymbol": instrument.tradingsymbol or child.symbol, "exchange": instrument.exchange,
            "transaction_type": child.side, "quantity": str(int(child.quantity)), "product": product,
            "validity": validity, "tag": child_tag(child.child_id)}
    if child.limit_price is None:
        form["order_type"] = "MARKET"
    else:
        form["order_type"] = "LIMIT"
        form["price"] = str(child.limit_price)
    return form


def report(child: ChildOrder | OrderTrack, status: ExecStatus, *, ts: int, key: str, **fields: Any) -> ExecutionReport:
    """An ExecutionReport for a child; its id is derived from the child and `key`, so a repeat dedupes."""
    c = child.child if isinstance(child, OrderTrack) else child
    return ExecutionReport(id=derived_id(c.child_id, f"kite:{key}"), ts=ts, correlation_id=c.order_id,
                           causation_id=c.id, order_id=c.order_id, child_id=c.child_id, account=c.account,
                           venue=VENUE, symbol=c.symbol, side=c.side, status=status, **fields)


@dataclass(frozen=True)
class OrderTrack:
    """What we know of a working Kite order: the child, Kite's order id, and the fills seen so far."""

    child: ChildOrder
    venue_order_id: str
    filled: Decimal = Decimal(0)
    average: Decimal = Decimal(0)
    done: bool = False


def _decimal(update: dict[str, Any], field: str) -> Decimal:
    value = update.get(field) or 0
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise OrderMappingError(field, value, "is not a number") from exc


def update_ts(update: dict[str, Any], fallback_ns: int) -> int:
    """The exchange's update time (IST, "YYYY-MM-DD HH:MM:SS") in ns, else `fallback_ns`."""
    text = update.get("exchange_update_timestamp") or update.get("order_timestamp")
    if not text:
        return fallback_ns
    try:
        return int(datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).timestamp()) * 1_000_000_000
    except ValueError:
        return fallback_ns


def on_update(track: OrderTrack, update: dict[str, Any], *, recv_ts: int) -> tuple[OrderTrack, ExecutionReport | None]:
    """Apply one Kite order update (postback or WebSocket) to a track; a new fill or final state gives a report."""
    if track.done:
        return track, None
    status = str(update.get("status", ""))
    filled, average = _decimal(update, "filled_quantity"), _decimal(update, "average_price")
    quantity = track.child.quantity
    ts = update_ts(update, recv_ts)
    common = {"venue_order_id": track.venue_order_id, "venue_ts": ts}
    if filled > track.filled:
        last_qty = filled - track.filled
        # Kite sends only the running average: this fill's price is what moves it.
        last_price = (average * filled - track.average * track.filled) / last_qty
        final = status == "COMPLETE" or filled >= quantity
        kind: ExecStatus = "FILLED" if final else "PARTIAL"
        new = replace(track, filled=filled, average=average, done=final)
        return new, report(track, kind, ts=ts, key=f"fill:{filled}", last_quantity=last_qty,
                           last_price=last_price.quantize(Decimal("0.000001")).normalize(), cum_quantity=filled,
                           leaves_quantity=max(quantity - filled, Decimal(0)), **common)
    if status in ("CANCELLED", "REJECTED"):
        kind = "CANCELLED" if status == "CANCELLED" else "REJECTED"
        return replace(track, done=True), report(track, kind, ts=ts, key=status.lower(), cum_quantity=track.filled,
                                                 reason=update.get("status_message") or None, **common)
    return track, None


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """The checksum Kite puts on a postback: hex SHA-256 of order_id + order_timestamp + api_secret."""
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def postback_valid(update: dict[str, Any], api_secret: str) -> bool:
    """True when a postback's checksum proves it came from Kite for our app."""
    expected = postback_checksum(str(update.get("order_id", "")), str(update.get("order_timestamp", "")), api_secret)
    return hmac.compare_digest(expected, str(update.get("checksum", "")))


class KiteOrders:
    """Places and cancels child orders at Kite and turns order updates into ExecutionReports."""

    def __init__(self, session: KiteSession, instruments: dict[str, KiteInstrument],
                 *, product: Product = "CNC", limiter: VenueLimiter | None = None) -> None:
        self.session = session
        self.instruments = instruments
        self.product = product
        self.limiter = limiter or VenueLimiter("kite", KITE_LIMITS, default_retry_s=1.0)
        self.tracks: dict[str, OrderTrack] = {}
        self.placed: set[str] = set()      # child ids sent (or refused), so a redelivery is not sent again
        self._sent: dict[str, ChildOrder] = {}   # children read back from the log, until their ACK names the order

    async def _call(self, method: str, path: str, form: dict[str, str] | None, step: str) -> dict[str, Any]:
        # Placing, modifying and cancelling all count as orders at Kite (10/s, 200/min, 3000/day).
        order = method != "GET"
        self.limiter.acquire({"orders": 1, "orders_minute": 1, "orders_day": 1, "requests": 1} if order
                             else {"requests": 1})
        for attempt in range(2):
            async with self.session.http.request(method, f"{self.session.urls.api}{path}", data=form,
                                                 headers=await self.session.headers()) as response:
                if response.status in (418, 429):
                    self.limiter.back_off(response.status, response.headers.get("Retry-After"))
                try:
                    return await kite_json(response, step)
                except KiteError as exc:
                    # An expired token is renewed once with a fresh login; anything else is the venue's answer.
                    if exc.session_expired and attempt == 0:
                        self.session.expire()
                        continue
                    raise
        raise AssertionError("unreachable")

    async def place(self, child: ChildOrder, *, recv_ts: int) -> ExecutionReport:
        """Send a child order; ACK with Kite's order id, or REJECTED with the reason (PlacementUnknown: cannot tell)."""
        instrument = self.instruments.get(child.symbol, KiteInstrument(child.symbol))
        self.placed.add(child.child_id)
        try:
            form = order_form(child, instrument, product=self.product)
            data = await self._call("POST", "/orders/regular", form, "place order")
        except (OrderMappingError, KiteError, LimitRefusal) as exc:
            return report(child, "REJECTED", ts=recv_ts, key="rejected", reason=str(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return await self._placement_lost(child, type(exc).__name__, recv_ts)
        return self._acked(child, str(data["order_id"]), recv_ts)

    async def _placement_lost(self, child: ChildOrder, error: str, recv_ts: int) -> ExecutionReport:
        """The answer was lost: the day's orders (GET /orders) say whether an order with the child's tag exists."""
        try:
            rows = (await self._call("GET", "/orders", None, "list orders")).get("value") or []
        except (KiteError, LimitRefusal, aiohttp.ClientError, TimeoutError) as exc:
            # Still unknown; the child is not sent twice, and the caller tells an operator.
            raise PlacementUnknown(child.child_id, error) from exc
        tag = child_tag(child.child_id)
        found = [row for row in rows if isinstance(row, dict) and row.get("tag") == tag]
        if not found:
            return report(child, "REJECTED", ts=recv_ts, key="rejected",
                          reason=f"placement failed ({error}) and Kite has no order tagged {tag}")
        return self._acked(child, str(found[0]["order_id"]), recv_ts)

    def _acked(self, child: ChildOrder, venue_order_id: str, recv_ts: int) -> ExecutionReport:
        self.tracks[venue_order_id] = OrderTrack(child, venue_order_id)
        return report(child, "ACK", ts=recv_ts, key="ack", leaves_quantity=child.quantity,
                      venue_order_id=venue_order_id)

    async def cancel(self, cancel: ChildCancel) -> None:
        """Ask Kite to cancel a working child; the CANCELLED report arrives as an order update."""
        for venue_order_id, track in self.tracks.items():
            if track.child.child_id == cancel.child_id and not track.done:
                await self._call("DELETE", f"/orders/regular/{venue_order_id}", None, "cancel order")
                return
        raise OrderMappingError("child_id", cancel.child_id, "is not a working Kite order of this connector")

    def restore(self, event: object) -> None:
        """Rebuild from the log after a restart: children sent, Kite's order ids, fills reported so far."""
        if isinstance(event, ChildOrder) and event.venue == VENUE:
            self.placed.add(event.child_id)
            self._sent[event.child_id] = event
        elif isinstance(event, ExecutionReport) and event.venue == VENUE and event.venue_order_id:
            child = self._sent.get(event.child_id)
            track = self.tracks.get(event.venue_order_id)
            if track is None and child is not None:
                track = OrderTrack(child, event.venue_order_id)
            if track is None:
                return
            if event.status in ("PARTIAL", "FILLED") and event.cum_quantity > track.filled:
                paid = track.average * track.filled + event.last_quantity * (event.last_price or Decimal(0))
                track = replace(track, filled=event.cum_quantity, average=paid / event.cum_quantity)
            done = track.done or event.status in ("FILLED", "CANCELLED", "REJECTED")
            self.tracks[event.venue_order_id] = replace(track, done=done)

    def on_order_update(self, update: dict[str, Any], *, recv_ts: int) -> ExecutionReport | None:
        """Apply an order update from the ticker or a postback; None for orders that are not ours or no news."""
        track = self.tracks.get(str(update.get("order_id", "")))
        if track is None:
            return None
        self.tracks[track.venue_order_id], result = on_update(track, update, recv_ts=recv_ts)
        return result


__all__ = ["VENUE", "KiteInstrument", "KiteOrders", "OrderMappingError", "PlacementUnknown", "OrderTrack", "child_tag", "on_update",
           "order_form", "postback_checksum", "postback_valid", "report", "update_ts"]
