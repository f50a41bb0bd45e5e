"""The router's state: intents awaiting a decision, working parent orders with their schedules and children.

A parent is the one order model (processors.orders.Order) extended with the schedule its
ParentOrderScheduled recorded and the market volume it has seen.

Owned by one core loop and updated in place by `core.evolve` (as the risk core's state is);
`decide` only reads it. Everything here is derived from events, so replaying the same events
rebuilds the same state.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal

from events.trading import ExecutionReport, OrderIntent, RiskDecision
from processors.orders import ZERO, Order, apply, copy_order
from processors.recent import Recent
from processors.router.config import RouterConfig, interval_ns
from processors.router.schedule import DAY_NS, VolumeCurve
from processors.router.venues import MarketView

ALL = "*"                                    # the kill-switch scope covering every account


class ParentOrder(Order, kw_only=True):
    """An accepted intent being worked: the shared order (processors.orders) with its schedule and the market it has seen."""

    venue: str | None = None
    lot: Decimal
    start_ts: int
    arrival_price: Decimal | None = None
    sources: frozenset[str] = frozenset()     # market venues whose trades count as "the market"
    times: list[int] = []                     # when each slice is due (empty for POV)
    cumulative: list[Decimal] = []            # quantity due by the end of each slice
    pov_rate: Decimal | None = None
    min_slice: Decimal | None = None
    max_slice: Decimal | None = None
    note: str | None = None
    market_volume: Decimal = ZERO
    market_notional: Decimal = ZERO

    def clone(self) -> ParentOrder:
        """A copy whose children can be changed without touching this one."""
        return copy_order(self)

    @property
    def committed(self) -> Decimal:
        """Filled plus what working children may still fill."""
        return self.filled + sum((c.leaves for c in self.children.values()), ZERO)

    def due_slices(self, now: int) -> int:
        """How many slices are due at `now`."""
        return bisect_right(self.times, now)

    def apply_report(self, report: ExecutionReport) -> bool:
        """Take in a venue report of one of its children; True if it changed anything (a duplicate or late one does not)."""
        child = self.children.get(report.child_id)
        if child is None or child.done:
            return False
        apply(self, report)
        return True

    def add_trade(self, quantity: Decimal, notional: Decimal) -> None:
        """Count market trades (their quantity and notional) in the interval VWAP and the observed volume."""
        self.market_volume += quantity
        self.market_notional += notional


@dataclass
class RouterState:
    """Everything the router core knows, rebuilt from events."""

    config: RouterConfig
    market: MarketView = field(default_factory=MarketView)
    curve: VolumeCurve = field(init=False)
    intents: dict[str, OrderIntent] = field(default_factory=dict)
    decisions: dict[str, RiskDecision] = field(default_factory=dict)     # accepted, intent not yet seen
    parents: dict[str, ParentOrder] = field(default_factory=dict)
    by_client: dict[tuple[str, str], str] = field(default_factory=dict)
    child_parent: dict[str, str] = field(default_factory=dict)
    # Completed or rejected order ids, while a redelivered intent or decision can still arrive
    # (processors.recent).
    closed: Recent[str, None] = field(default_factory=Recent)
    early_cancels: dict[str, str] = field(default_factory=dict)          # cancelled before accepted
    killed: set[str] = field(default_factory=set)
    now: int = 0

    def __post_init__(self) -> None:
        self.curve = VolumeCurve(bucket_ns=interval_ns(self.config.vwap_bar_interval),
                                 lookback_ns=self.config.vwap_lookback_days * DAY_NS)

    def is_killed(self, account: str) -> bool:
        """Is the kill switch engaged for `account` (or for everyone)?"""
        return ALL in self.killed or account in self.killed

    def resolve(self, account: str, order_id: str | None, client_order_id: str | None) -> str | None:
        """The order id a cancel means, by id or by the account's client order id."""
        if order_id is not None:
            return order_id
        if client_order_id is not None:
            return self.by_client.get((account, client_order_id))
        return None


__all__ = ["ALL", "ZERO", "ParentOrder", "RouterState"]
