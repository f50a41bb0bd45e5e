"""Binance order lifecycle to ExecutionReports, one model for every source: REST answers, the user-data stream, myTrades.

A fill is known by its Binance trade id wherever it is seen (a FULL placement answer's `fills`,
an `executionReport` with execution type TRADE, a `myTrades` row fetched after a gap), and its
report id is derived from the child id and that trade id: a fill seen twice is reported once
here, and a copy that slipped through (a restart) has the same id, which JetStream's dedupe
window drops. The cumulative quantity is the sum of the distinct fills applied, so it agrees
whatever order the sources answered in. Mapping (executionReport `x`): NEW → ACK, TRADE →
PARTIAL or FILLED, CANCELED → CANCELLED, EXPIRED / EXPIRED_IN_MATCH → CANCELLED (reason says
expired; our statuses have no EXPIRED), REJECTED → REJECTED with Binance's reject reason `r`.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from events.ids import derived_id
from events.portfolio import VenuePositionsReported
from events.trading import ChildOrder, ExecStatus, ExecutionReport

VENUE = "binance"
MS = 1_000_000
ZERO = Decimal(0)
FINAL = {"CANCELED": ("CANCELLED", "canceled"), "EXPIRED": ("CANCELLED", "expired"),
         "EXPIRED_IN_MATCH": ("CANCELLED", "expired_in_match"), "REJECTED": ("REJECTED", "rejected")}
# Quote assets Binance spot lists symbols against, longest first, so a symbol's base asset is what remains.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "TRY", "EUR", "BRL", "JPY", "BTC", "ETH", "BNB", "DAI")


def base_asset(symbol: str) -> str | None:
    """`NKNUSDT` -> `NKN`: the asset whose balance is this symbol's spot position (None if no known quote)."""
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return None


@dataclass
class Tracked:
    """One child at Binance: Binance's order id once known, the trade ids applied, and the running total."""

    child: ChildOrder
    venue_order_id: str | None = None
    trades: set[str] = field(default_factory=set)
    cum: Decimal = ZERO
    acked: bool = False
    done: bool = False

    @property
    def leaves(self) -> Decimal:
        """What is still to fill."""
        return max(self.child.quantity - self.cum, ZERO)


def report(tracked: Tracked, status: ExecStatus, key: str, ts: int, **fields: Any) -> ExecutionReport:
    """A report about a tracked child; its id is derived from the child id and `key`, so a repeat dedupes."""
    c = tracked.child
    return ExecutionReport(id=derived_id(c.child_id, f"binance:{key}"), ts=ts, correlation_id=c.order_id,
                           causation_id=c.id, order_id=c.order_id, child_id=c.child_id, account=c.account,
                           venue=VENUE, symbol=c.symbol, side=c.side, status=status,
                           venue_order_id=tracked.venue_order_id, venue_ts=ts, **fields)


def _dec(value: object, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"{name} {value!r} is not a decimal number") from exc


class ExecutionBook:
    """The children this connector placed, folded from whatever Binance says about them."""

    def __init__(self) -> None:
        self.by_child: dict[str, Tracked] = {}
        self.by_order_id: dict[str, str] = {}
        self.duplicates = 0          # fills seen again (REST and stream both), counted not reported
        self.published: set[str] = set()   # report ids an earlier run published (restored from the log)

    def restore(self, event: object) -> None:
        """Rebuild from the log after a restart: children we sent and what was reported of them."""
        if isinstance(event, ChildOrder) and event.venue == VENUE:
            self.track(event)
        elif isinstance(event, ExecutionReport) and event.venue == VENUE:
            tracked = self.by_child.get(event.child_id)
            if tracked is None:
                return
            self.published.add(event.id)
            self._know_order(tracked, event.venue_order_id)
            tracked.acked = True
            tracked.cum = max(tracked.cum, event.cum_quantity)
            tracked.done = tracked.done or event.status in ("FILLED", "CANCELLED", "REJECTED")

    def track(self, child: ChildOrder) -> Tracked:
        """Start following a child about to be sent (idempotent)."""
        return self.by_child.setdefault(child.child_id, Tracked(child))

    def find(self, client_id: str | None, order_id: object = None) -> Tracked | None:
        """The tracked child by our client order id, or by Binance's order id."""
        tracked = self.by_child.get(client_id or "")
        if tracked is None and order_id is not None:
            tracked = self.by_child.get(self.by_order_id.get(str(order_id), ""))
        return tracked

    def working(self) -> list[Tracked]:
        """Children not yet filled, cancelled or rejected."""
        return [t for t in self.by_child.values() if not t.done]

    def _know_order(self, tracked: Tracked, order_id: object) -> None:
        if order_id not in (None, "", -1) and tracked.venue_order_id is None:
            tracked.venue_order_id = str(order_id)
            self.by_order_id[tracked.venue_order_id] = tracked.child.child_id

    def ack(self, tracked: Tracked, order_id: object, ts: int) -> list[ExecutionReport]:
        """ACK once, when Binance first accepts the order."""
        self._know_order(tracked, order_id)
        if tracked.acked:
            return []
        tracked.acked = True
        return [report(tracked, "ACK", "ack", ts, leaves_quantity=tracked.child.quantity)]

    def fill(self, tracked: Tracked, *, trade_id: object, qty: Decimal, price: Decimal, fee: Decimal,
             fee_asset: str | None, ts: int, maker: bool | None = None) -> list[ExecutionReport]:
        """A PARTIAL or FILLED report for a trade not seen before; nothing for a repeat."""
        key = str(trade_id)
        if key in tracked.trades or derived_id(tracked.child.child_id, f"binance:trade:{key}") in self.published:
            tracked.trades.add(key)
            self.duplicates += 1
            return []
        tracked.trades.add(key)
        tracked.cum += qty
        full = tracked.cum >= tracked.child.quantity
        tracked.done = tracked.done or full
        out = [] if tracked.acked else self.ack(tracked, None, ts)
        liquidity = None if maker is None else ("MAKER" if maker else "TAKER")
        out.append(report(tracked, "FILLED" if full else "PARTIAL", f"trade:{key}", ts, last_quantity=qty,
                           last_price=price, cum_quantity=tracked.cum, leaves_quantity=tracked.leaves, fee=fee,
                           fee_currency=fee_asset, liquidity=liquidity))
        return out

    def final(self, tracked: Tracked, status: str, ts: int, reason: str | None = None) -> list[ExecutionReport]:
        """CANCELLED or REJECTED once, for an order that ended without filling in full."""
        mapped = FINAL.get(status)
        if mapped is None or tracked.done:
            return []
        tracked.done = True
        kind, key = mapped
        text = f"binance {status}" + (f": {reason}" if reason and reason != "NONE" else "")
        return [report(tracked, kind, key, ts, cum_quantity=tracked.cum, reason=text)]  # type: ignore[arg-type]

    def on_order_answer(self, tracked: Tracked, body: dict[str, Any], *, ack: bool = True) -> list[ExecutionReport]:
        """A REST order answer (placement FULL, cancel, status): ACK, its listed fills, and a final state."""
        ts = int(body.get("transactTime") or body.get("updateTime") or body.get("time") or 0) * MS
        out = self.ack(tracked, body.get("orderId"), ts) if ack else []
        self._know_order(tracked, body.get("orderId"))
        for fill in body.get("fills") or []:
            out += self.fill(tracked, trade_id=fill["tradeId"], qty=_dec(fill["qty"], "fills.qty"),
                             price=_dec(fill["price"], "fills.price"),
                             fee=_dec(fill.get("commission", "0"), "fills.commission"),
                             fee_asset=fill.get("commissionAsset"), ts=ts)
        executed = _dec(body.get("executedQty", "0"), "executedQty")
        if executed <= tracked.cum:  # a final state only once every fill before it is applied
            out += self.final(tracked, str(body.get("status", "")), ts)
        return out

    def on_my_trade(self, trade: dict[str, Any]) -> list[ExecutionReport]:
        """One row of GET /api/v3/myTrades for an order we track."""
        tracked = self.find(None, trade.get("orderId"))
        if tracked is None:
            return []
        return self.fill(tracked, trade_id=trade["id"], qty=_dec(trade["qty"], "qty"),
                         price=_dec(trade["price"], "price"), fee=_dec(trade.get("commission", "0"), "commission"),
                         fee_asset=trade.get("commissionAsset"), ts=int(trade["time"]) * MS,
                         maker=trade.get("isMaker"))

    def on_execution_report(self, msg: dict[str, Any]) -> list[ExecutionReport] | None:
        """An `executionReport` user-data event; None when it is not about an order this connector placed."""
        kind = msg.get("x")
        # A cancel's report carries the cancel request's id in `c`, the cancelled order's in `C`.
        client = msg.get("C") if kind == "CANCELED" and msg.get("C") else msg.get("c")
        tracked = self.find(str(client or ""), msg.get("i"))
        if tracked is None:
            return None
        ts = int(msg.get("T") or msg.get("E") or 0) * MS
        self._know_order(tracked, msg.get("i"))
        match kind:
            case "NEW":
                return self.ack(tracked, msg.get("i"), ts)
            case "TRADE":
                return self.fill(tracked, trade_id=msg["t"], qty=_dec(msg["l"], "l"), price=_dec(msg["L"], "L"),
                                 fee=_dec(msg.get("n") or "0", "n"), fee_asset=msg.get("N"), ts=ts,
                                 maker=bool(msg.get("m")))
            case "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" | "REJECTED":
                return self.final(tracked, str(kind), ts, str(msg.get("r") or "") or None)
        return []


def positions_report(account: str, balances: dict[str, Decimal], symbols: list[str], *,
                     event_ms: int, update_ms: int) -> VenuePositionsReported:
    """What Binance says the account holds, per configured symbol: its base asset's free + locked balance."""
    positions = {}
    for symbol in symbols:
        asset = base_asset(symbol)
        if asset is not None and asset in balances:
            positions[symbol] = balances[asset]
    return VenuePositionsReported(id=derived_id(f"binance:{account}", "positions", update_ms), ts=event_ms * MS,
                                  account=account, venue=VENUE, positions=positions, as_of_ts=update_ms * MS)


__all__ = ["VENUE", "ExecutionBook", "Tracked", "base_asset", "positions_report"]
