"""The router's state: intents awaiting a decision, working parent orders with their schedules and children.

Owned by one core loop and updated in place by `core.evolve` (as the risk core's state is);
`decide` only reads it. Everything here is derived from events, so replaying the same events
rebuilds the same state.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal

from events.trading import ExecutionReport, OrderIntent, RiskDecision
from processors.recent import Recent
from processors.router.config import RouterConfig, interval_ns
from processors.router.schedule import DAY_NS, VolumeCurve
from processors.router.venues import MarketView

ZERO = Decimal(0)
TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED"})
ALL = "*"                                    # the kill-switch scope covering every account


@dataclass
class ChildState:
    """One child order as the router tracks it from its venue's reports."""

    child_id: str
    venue: str
    quantity: Decimal
    slice_index: int
    cum: Decimal = ZERO
    done: bool = False
    cancel_sent: bool = False
    last_reason: str | None = None

    @property
    def leaves(self) -> Decimal:
        """What the child may still fill: nothing once it is done."""
        return ZERO if self.done else self.quantity - self.cum


@dataclass
class ParentOrder:
    """An accepted intent being worked: its schedule, children, fills and the market it has seen."""

    order_id: str
    account: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    time_in_force: str
    venue: str | None
    algo: str
    lot: Decimal
    start_ts: int
    arrival_price: Decimal | None
    sources: frozenset[str]                   # market venues whose trades count as "the market"
    times: list[int]                          # when each slice is due (empty for POV)
    cumulative: list[Decimal]                 # quantity due by the end of each slice
    pov_rate: Decimal | None = None
    min_slice: Decimal | None = None
    max_slice: Decimal | None = None
    note: str | None = None
    last_slice: int = -1                      # highest slice index a child was sent for
    children: dict[str, ChildState] = field(default_factory=dict)
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    market_volume: Decimal = ZERO
    market_notional: Decimal = ZERO
    stopping: str | None = None               # why it stopped scheduling (cancel, kill switch)

    def clone(self) -> ParentOrder:
        """A copy whose children can be changed without touching this one."""
        other = copy.copy(self)
        other.children = {k: copy.copy(v) for k, v in self.children.items()}
        return other

    @property
    def working(self) -> list[ChildState]:
        """Children sent and not yet done, in the order they were sent."""
        return [c for c in self.children.values() if not c.done]

    @property
    def committed(self) -> Decimal:
        """Filled plus what working children may still fill."""
        return self.filled + sum((c.leaves for c in self.children.values()), ZERO)

    @property
    def exhausted(self) -> bool:
        """The last slice of a timed schedule has been sent (POV never runs out)."""
        return bool(self.times) and self.last_slice >= len(self.times) - 1

    def due_slices(self, now: int) -> int:
        """How many slices are due at `now`."""
        return bisect_right(self.times, now)

    def apply_report(self, report: ExecutionReport) -> bool:
        """Take in a venue report; True if it changed anything (a duplicate or late one does not)."""
        child = self.children.get(report.child_id)
        if child is None or child.done:
            return False
        delta = report.cum_quantity - child.cum
        if delta > 0:
            price = report.last_price if report.last_price is not None else ZERO
            self.filled += delta
            self.notional += delta * price
            child.cum = report.cum_quantity
        if report.fee and delta > 0:
            self.fees += report.fee
        if report.status in TERMINAL:
            child.done = True
            child.last_reason = report.reason
        return True

    def add_trade(self, price: Decimal, quantity: Decimal) -> None:
        """Count a market trade in the interval VWAP and the observed volume."""
        self.market_volume += quantity
        self.market_notional += price * quantity


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


__all__ = ["ALL", "TERMINAL", "ZERO", "ChildState", "ParentOrder", "RouterState"]
