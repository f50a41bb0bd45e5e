"""Event factories and a two-core pipeline (router + simulated venues) wired like the bus, for router tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from events import (
    Bar,
    BookDelta,
    BookSnapshot,
    BookTop,
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    KillSwitchEngaged,
    OrderIntent,
    RiskDecision,
    TimerFired,
    Trade,
)
from events._base import Event
from events.ids import derived_id
from events.trading import ParentOrderCompleted, ParentOrderScheduled
from processors.router.config import RouterConfig, VenueSpec
from processors.router.state import RouterState
from processors.venue_sim.config import SimConfig
from processors.venue_sim.state import SimState
from tests.cores import router_step, sim_step

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_699_999_980 * NS          # a whole minute (UTC)
D = Decimal


def venue(name: str, *, market: str | None = "mkt", taker: str = "0", maker: str = "0", latency_ms: int = 0,
          symbols: list[str] | None = None) -> VenueSpec:
    return VenueSpec(name=name, market_venue=market, taker_fee_bps=D(taker), maker_fee_bps=D(maker),
                     latency_ns=latency_ms * MS, symbols=symbols or [])


def router_config(*venues: VenueSpec, **kw: object) -> RouterConfig:
    config = RouterConfig(venues=list(venues) or [venue("sim")], **kw)  # type: ignore[arg-type]
    assert config.validate() == []
    return config


def sim_config(*venues: VenueSpec, **kw: object) -> SimConfig:
    config = SimConfig(venues=list(venues) or [venue("sim")], **kw)  # type: ignore[arg-type]
    assert config.validate() == []
    return config


def intent(coid: str, quantity: str, *, side: str = "BUY", algo: object = None, limit: str | None = None,
           venue: str | None = None, account: str = "ACC1", symbol: str = "XYZ", ts: int = T0,
           tif: str = "GTC") -> OrderIntent:
    return OrderIntent(id=derived_id(f"{account}:{coid}", "intent"), ts=ts, account=account, client_order_id=coid,
                       symbol=symbol, venue=venue, side=side, quantity=D(quantity),  # type: ignore[arg-type]
                       limit_price=None if limit is None else D(limit), algo=algo,  # type: ignore[arg-type]
                       time_in_force=tif)  # type: ignore[arg-type]


def accept(order: OrderIntent, *, accepted: bool = True, ts: int | None = None) -> RiskDecision:
    return RiskDecision(id=derived_id(order.id, "risk-decision"), ts=order.ts if ts is None else ts,
                        correlation_id=order.id, causation_id=order.id, order_id=order.id, account=order.account,
                        symbol=order.symbol, accepted=accepted)


def timer(due: int, name: str = "router") -> TimerFired:
    return TimerFired(id=derived_id(name, "timer", due), ts=due, timer=name, due_ts=due)


def timers(start: int, end: int, every: int = NS) -> list[TimerFired]:
    return [timer(t) for t in range(start, end + 1, every)]


def top(bid: str | None, ask: str | None, *, ts: int = T0, venue: str = "mkt", symbol: str = "XYZ") -> BookTop:
    return BookTop(id=derived_id(f"{venue}:{symbol}:{bid}:{ask}", "top", ts), ts=ts, venue=venue, symbol=symbol,
                   last_update_id=0, bid_price=None if bid is None else D(bid), bid_size=D(1) if bid else None,
                   ask_price=None if ask is None else D(ask), ask_size=D(1) if ask else None)


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, ts: int = T0, venue: str = "mkt",
         symbol: str = "XYZ", update_id: int = 100) -> BookSnapshot:
    return BookSnapshot(id=derived_id(f"{venue}:{symbol}", "snapshot", update_id), ts=ts, venue=venue,
                        symbol=symbol, last_update_id=update_id, bids=[(D(p), D(s)) for p, s in bids],
                        asks=[(D(p), D(s)) for p, s in asks])


def delta(bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, update_id: int, ts: int = T0,
          venue: str = "mkt", symbol: str = "XYZ") -> BookDelta:
    return BookDelta(id=derived_id(f"{venue}:{symbol}", "delta", update_id), ts=ts, venue=venue, symbol=symbol,
                     first_update_id=update_id, last_update_id=update_id, bids=[(D(p), D(s)) for p, s in bids],
                     asks=[(D(p), D(s)) for p, s in asks])


def trade(price: str, quantity: str, *, ts: int = T0, venue: str = "mkt", symbol: str = "XYZ",
          n: int = 0) -> Trade:
    return Trade(id=derived_id(f"{venue}:{symbol}", "trade", ts * 1000 + n), ts=ts, venue=venue, symbol=symbol,
                 price=D(price), quantity=D(quantity))


def bar(open_time: int, volume: str, *, price: str = "10", venue: str = "mkt", symbol: str = "XYZ",
        interval: str = "1m") -> Bar:
    return Bar(id=derived_id(f"{venue}:{symbol}:{interval}", "bar", open_time), ts=open_time + 60 * NS, venue=venue,
               symbol=symbol, interval=interval, open_time=open_time, open=D(price), high=D(price), low=D(price),
               close=D(price), volume=D(volume))


def cancel(order: OrderIntent, *, ts: int, reason: str | None = "user") -> CancelIntent:
    return CancelIntent(id=derived_id(order.id, "cancel", ts), ts=ts, account=order.account, order_id=order.id,
                        reason=reason)


def kill(account: str | None, *, ts: int) -> KillSwitchEngaged:
    return KillSwitchEngaged(id=derived_id(str(account), "kill", ts), ts=ts, account=account, actor="ops",
                             reason="drill")


def child(quantity: str, *, side: str = "BUY", limit: str | None = None, tif: str = "GTC", ts: int = T0,
          venue: str = "sim", symbol: str = "XYZ", n: int = 0) -> ChildOrder:
    return ChildOrder(id=derived_id("parent", "child-order", n), ts=ts, order_id="parent",
                      child_id=derived_id("parent", "child", n), account="ACC1", venue=venue, symbol=symbol,
                      side=side, quantity=D(quantity), limit_price=None if limit is None else D(limit),  # type: ignore[arg-type]
                      time_in_force=tif, slice_index=n)  # type: ignore[arg-type]


@dataclass
class Pipeline:
    """The router and the simulated venues consuming one shared stream, as they would the bus."""

    router: RouterState
    sim: SimState
    log: list[Event] = field(default_factory=list)

    @classmethod
    def make(cls, router_cfg: RouterConfig | None = None, sim_cfg: SimConfig | None = None) -> Pipeline:
        return cls(RouterState(router_cfg or router_config()), SimState(sim_cfg or sim_config()))

    def feed(self, *events: Event) -> Pipeline:
        """Each input and everything it causes (breadth first) before the next input."""
        for first in events:
            queue = deque([first])
            while queue:
                event = queue.popleft()
                self.log.append(event)
                self.router, routed = router_step(self.router, event)
                self.sim, reported = sim_step(self.sim, event)
                queue.extend(routed + reported)
        return self

    def of(self, kind: type) -> list:
        return [e for e in self.log if isinstance(e, kind)]

    @property
    def children(self) -> list[ChildOrder]:
        return self.of(ChildOrder)

    @property
    def cancels(self) -> list[ChildCancel]:
        return self.of(ChildCancel)

    @property
    def reports(self) -> list[ExecutionReport]:
        return self.of(ExecutionReport)

    @property
    def completions(self) -> list[ParentOrderCompleted]:
        return self.of(ParentOrderCompleted)

    def outputs(self) -> list[Event]:
        """What the cores emitted (everything logged that a core made)."""
        return [e for e in self.log
                if isinstance(e, ParentOrderScheduled | ChildOrder | ChildCancel | ExecutionReport | ParentOrderCompleted)]
