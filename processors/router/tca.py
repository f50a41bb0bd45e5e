"""Transaction cost analysis of a finished parent order (the numbers ParentOrderCompleted carries).

See `ParentOrderCompleted` for the definitions and the sign convention: costs are positive
when the order did worse than the benchmark.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from events._base import Event
from events.trading import ParentOrderCompleted, ParentStatus
from processors.router.state import ParentOrder

BPS = Decimal(10_000)


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def cost_bps(side: str, price: Decimal, benchmark: Decimal) -> Decimal:
    """How much worse than `benchmark` the price was, in bps; positive is a cost."""
    sign = 1 if side == "BUY" else -1
    return sign * (price - benchmark) / benchmark * BPS


def completed(parent: ParentOrder, *, status: ParentStatus, reason: str | None, event_id: str, cause: Event,
              end_ts: int, price_places: int = 10, bps_places: int = 4) -> ParentOrderCompleted:
    """The completion event of `parent`, with its TCA computed from its fills and the market it saw."""
    average = parent.notional / parent.filled if parent.filled else None
    vwap = parent.market_notional / parent.market_volume if parent.market_volume else None
    arrival = parent.arrival_price
    return ParentOrderCompleted(
        id=event_id, ts=end_ts, correlation_id=parent.order_id, causation_id=cause.id,
        order_id=parent.order_id, account=parent.account, client_order_id=parent.client_order_id,
        symbol=parent.symbol, side=parent.side, algo=parent.algo,  # type: ignore[arg-type]
        status=status, reason=reason, quantity=parent.quantity, filled_quantity=parent.filled,
        children=len(parent.children), start_ts=parent.start_ts, end_ts=end_ts,
        arrival_price=None if arrival is None else _q(arrival, price_places),
        average_price=None if average is None else _q(average, price_places),
        fees=parent.fees,
        shortfall_bps=None if average is None or not arrival
        else _q(cost_bps(parent.side, average, arrival), bps_places),
        interval_vwap=None if vwap is None else _q(vwap, price_places),
        vwap_slippage_bps=None if average is None or vwap is None
        else _q(cost_bps(parent.side, average, vwap), bps_places),
        market_volume=parent.market_volume,
        participation=None if not parent.market_volume else _q(parent.filled / parent.market_volume, 6),
        schedule_note=parent.note,
    )


__all__ = ["completed", "cost_bps"]
