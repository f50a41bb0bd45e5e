"""The reporting service's pure core: a real-time trade report (TradeReported) for every fill.

`decide(state, event) -> [events]` and `evolve(state, event) -> state`; no I/O and no clock (time
is the `ts` of the event being handled).

Inputs and outputs:
- OrderIntent → what a trade report names of its parent order: client order id and algorithm;
- RiskDecision → the decision id of an accepted order (a rejected order is forgotten: it never fills);
- ExecutionReport with a fill → one TradeReported on `sq.rpt.trade.<account>`, id derived from the
  report's, so a redelivered report, a restart or a replay publishes the same report, which
  JetStream's dedupe window drops;
- ParentOrderCompleted → the order's facts are kept a few more minutes (a late fill still finds
  them), then forgotten, so the state stays bounded by the orders working.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from events._base import Event
from events.ids import derived_id
from events.trading import ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision, TradeReported
from processors.recent import Recent

ROLE_TRADE_REPORT = "trade-report"
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 1
# Intents and decisions name a fill's order and algorithm; reports carry the fills; completions end an order.
SUBSCRIPTIONS = ("sq.ord.intent.>", "sq.risk.decision.>", "sq.exec.report.>", "sq.exec.tca.>")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_microsecond(ts: int) -> int:
    """ns since the epoch truncated to a whole microsecond (the precision a trade report states)."""
    return ts - ts % 1000


def iso_microseconds(ts: int) -> str:
    """ns since the epoch as ISO-8601 UTC with exactly six decimals (`2026-12-04T18:26:58.123456Z`)."""
    moment = _EPOCH + dt.timedelta(microseconds=ts // 1000)  # integer arithmetic: floats lose the microseconds
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class OrderFacts:
    """What reporting knows of a parent order from its intent and its risk decision."""

    intent: OrderIntent
    decision_id: str | None = None
    accepted: bool | None = None


class ReportingState:
    """Working orders' facts, finished orders' for a few minutes more, and fills already reported."""

    __slots__ = ("orders", "finished", "reported")

    def __init__(self) -> None:
        self.orders: dict[str, OrderFacts] = {}
        self.finished: Recent[str, OrderFacts] = Recent()
        self.reported: Recent[str, None] = Recent()       # report ids, while a copy can still arrive

    def facts(self, order_id: str) -> OrderFacts | None:
        """The order's facts, working or recently finished (None: its intent was never seen)."""
        return self.orders.get(order_id) or self.finished.get(order_id)


def is_fill(report: ExecutionReport) -> bool:
    """Whether an execution report carries a fill (a quantity traded at a price)."""
    return report.last_quantity > 0 and report.last_price is not None


def trade_report(report: ExecutionReport, facts: OrderFacts | None) -> TradeReported:
    """The trade report of one fill: the same report and facts always give the same event."""
    assert report.last_price is not None
    executed = to_microsecond(report.venue_ts if report.venue_ts is not None else report.ts)
    published = to_microsecond(report.ts)
    return TradeReported(
        id=derived_id(report.id, ROLE_TRADE_REPORT), ts=report.ts, causation_id=report.id,
        correlation_id=report.correlation_id or report.order_id, report_id=report.id, account=report.account,
        venue=report.venue, symbol=report.symbol, side=report.side, quantity=report.last_quantity,
        price=report.last_price, order_id=report.order_id, child_id=report.child_id,
        venue_order_id=report.venue_order_id,
        client_order_id=facts.intent.client_order_id if facts is not None else None,
        decision_id=facts.decision_id if facts is not None else None,
        algo=facts.intent.algo_kind if facts is not None else None,
        execution_ts=executed, execution_time=iso_microseconds(executed),
        publication_ts=published, publication_time=iso_microseconds(published),
        fee=report.fee, fee_currency=report.fee_currency, liquidity=report.liquidity)


def decide(state: ReportingState, event: object) -> list[Event]:
    """A TradeReported for a fill not reported yet; nothing for any other input."""
    match event:
        case ExecutionReport() if is_fill(event) and event.id not in state.reported:
            return [trade_report(event, state.facts(event.order_id))]
    return []


def evolve(state: ReportingState, event: object) -> ReportingState:
    """Fold one event into the orders' facts and the reported fills."""
    ts = getattr(event, "ts", None)
    if ts is not None:
        state.finished.advance(ts)      # finished orders are forgotten as event time passes, not only on the next
    match event:
        case OrderIntent(id=order_id) if order_id not in state.orders and order_id not in state.finished:
            state.orders[order_id] = OrderFacts(event)
        case RiskDecision(order_id=order_id, accepted=accepted):
            facts = state.orders.get(order_id)
            if facts is not None and accepted:
                facts.decision_id, facts.accepted = event.id, True
            elif facts is not None:
                del state.orders[order_id]      # rejected: no fill will ever name it
        case ExecutionReport() if is_fill(event):
            state.reported.add(event.id, event.ts)
        case ParentOrderCompleted(order_id=order_id):
            facts = state.orders.pop(order_id, None)
            if facts is not None:
                state.finished.set(order_id, facts, event.ts)
    return state


__all__ = ["ROLE_TRADE_REPORT", "STATE_VERSION", "SUBSCRIPTIONS", "OrderFacts", "ReportingState", "decide",
           "evolve", "is_fill", "iso_microseconds", "to_microsecond", "trade_report"]
