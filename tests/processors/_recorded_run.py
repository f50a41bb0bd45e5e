"""A whole recorded run made offline: real Binance market data and orders through every core, as a log.

The shipped cryptofeed recording (depth snapshots, diff depth, book tickers, aggTrades of the
Binance spot market) is the market; order intents of three accounts (MARKET, LIMIT, TWAP), cancels,
router timers and a kill switch are interleaved with it. Each input is "stored" in order, and each
core that reads its subject steps on it, as ProcessorHost does; the outputs are stored right after
their cause and read in turn. The result is the log a live stack of these cores would record, with
every event type the cores read and write, for cutting at random points.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal as D
from functools import cache
from typing import Any

from events import BookTop, KillSwitchEngaged, OrderIntent, Trade, derived_id, intent_id_for
from events._base import Event
from events.control import KillSwitchReleased
from events.subjects import stream_for_subject, subject_for
from events.trading import CancelIntent, LimitAlgo, MarketAlgo, TwapAlgo
from processors.aggregator.config import AggregatorConfig
from processors.aggregator.core import initial_state
from processors.aggregator.runner import decide as aggregator_decide
from processors.aggregator.runner import evolve as aggregator_evolve
from processors.aggregator.runner import wanted as aggregator_wanted
from processors.connector.recordings import Record, read_records
from processors.fold import step
from processors.portfolio.core import PortfolioConfig, PortfolioState
from processors.portfolio.core import decide as portfolio_decide
from processors.portfolio.core import evolve as portfolio_evolve
from processors.portfolio.runner import _wanted as portfolio_wanted
from processors.reporting.core import ReportingState
from processors.reporting.core import decide as reporting_decide
from processors.reporting.core import evolve as reporting_evolve
from processors.reporting.runner import wanted as reporting_wanted
from processors.risk import Limits, LimitsFile, RiskState
from processors.risk import decide as risk_decide
from processors.risk import evolve as risk_evolve
from processors.risk.runner import _wanted as risk_wanted
from processors.router import RouterConfig, RouterState, VenueSpec
from processors.router import decide as router_decide
from processors.router import evolve as router_evolve
from processors.router.runner import timer_event
from processors.router.runner import wanted as router_wanted
from processors.venue_sim.config import SimConfig
from processors.venue_sim.core import decide as sim_decide
from processors.venue_sim.core import evolve as sim_evolve
from processors.venue_sim.runner import wanted as sim_wanted
from processors.venue_sim.state import SimState
from store.follow import Envelope
from tests.conftest import REPO_ROOT

SAMPLES = REPO_ROOT / "data" / "samples"
SYMBOL = "NKNUSDT"
VENUES = [VenueSpec(name="SIM_A", market_venue="binance", taker_fee_bps=D("10"), latency_ns=1_000_000),
          VenueSpec(name="SIM_B", market_venue="binance", taker_fee_bps=D("25"), latency_ns=5_000_000)]
LIMITS = LimitsFile(defaults=Limits(max_order_quantity=D("1000000"), max_order_notional=D("1000000")))


@dataclass(frozen=True)
class CoreSpec:
    """How a runner sets up one core: a fresh state, its functions, its subject filter and apply_outputs."""

    name: str
    fresh: Callable[[], Any]
    decide: Callable[[Any, Any], list[Event]]
    evolve: Callable[[Any, Any], Any]
    wanted: Callable[[str], bool]
    apply_outputs: bool


CORES = (
    CoreSpec("risk", lambda: RiskState(LIMITS), risk_decide, risk_evolve, risk_wanted, True),
    CoreSpec("router", lambda: RouterState(RouterConfig(venues=list(VENUES))), router_decide, router_evolve,
             router_wanted, True),
    CoreSpec("venue-sim", lambda: SimState(SimConfig(venues=list(VENUES))), sim_decide, sim_evolve, sim_wanted,
             True),
    CoreSpec("portfolio", lambda: PortfolioState(PortfolioConfig(capital={"ACC1": D("10000")})), portfolio_decide,
             portfolio_evolve, portfolio_wanted, False),
    CoreSpec("aggregator", lambda: initial_state(AggregatorConfig(intervals=("1s", "1m"))), aggregator_decide,
             aggregator_evolve, aggregator_wanted, False),
    CoreSpec("reporting", ReportingState, reporting_decide, reporting_evolve, reporting_wanted, False),
)


def fold(spec: CoreSpec, state: Any, event: Any) -> tuple[Any, list[Event]]:
    """One event through the core as its runner's host folds it (processors.fold.step)."""
    return step(spec.decide, spec.evolve, state, event, apply_outputs=spec.apply_outputs)


def _market() -> list[Event]:
    """The recording's events, in recorded order."""
    items: list[Record] = []
    for name in ("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0"):
        data = (SAMPLES / name).read_bytes()
        items.extend(item for item in read_records(data, name=name) if isinstance(item, Record))
    items.sort(key=lambda record: (record.recorded_ns, record.line))
    return [record.event for record in items]


def _orders(n: int, ts: int, mid: D) -> list[Event]:
    """The n-th batch of order-path inputs from outside, at event time ts."""
    account = f"ACC{n % 3 + 1}"
    cid = f"run-{n}"
    side = "BUY" if n % 2 == 0 else "SELL"
    kind = n % 4
    algo: Any
    if kind == 0:
        algo, price = MarketAlgo(), None
    elif kind == 1:
        algo, price = LimitAlgo(), (mid * D("0.999") if side == "BUY" else mid * D("1.001")).quantize(D("0.00001"))
    else:
        algo, price = TwapAlgo(duration_s=4, slices=2), None
    intent = OrderIntent(id=intent_id_for(account, cid), ts=ts, account=account, client_order_id=cid, symbol=SYMBOL,
                         side=side, quantity=D(20 + n % 5 * 10), limit_price=price, algo=algo)
    out: list[Event] = [intent]
    if kind == 1 and n % 3 == 0:
        out.append(CancelIntent(id=intent_id_for(account, f"cancel-{cid}"), ts=ts + 1, account=account,
                                client_order_id=cid))
    if n == 9:
        out.append(KillSwitchEngaged(id=intent_id_for("ACC2", "kill"), ts=ts + 2, account="ACC2", actor="test",
                                     reason="drill"))
    if n == 14:
        out.append(KillSwitchReleased(id=intent_id_for("ACC2", "release"), ts=ts + 2, account="ACC2", actor="test",
                                      reason="drill over"))
    return out


def _inputs() -> Iterator[Event]:
    """Market data with order inputs every 12 market events and a router timer every second of event time."""
    timer_every = 1_000_000_000
    next_timer: int | None = None
    mid = D("0.5")
    n = 0
    for index, event in enumerate(_market()):
        ts = event.ts
        if next_timer is None:
            next_timer = (ts // timer_every + 1) * timer_every
        while ts >= next_timer:
            yield timer_event("router", next_timer)
            next_timer += timer_every
        yield event
        if isinstance(event, BookTop) and index % 3 == 0:
            # The recording has few aggTrades: a trade at the touch every few tops gives bars and marks.
            yield Trade(id=derived_id(event.id, "touch-trade"), ts=event.ts, venue=event.venue, symbol=event.symbol,
                        price=event.bid_price if index % 2 else event.ask_price, quantity=D("3"),
                        aggressor="SELL" if index % 2 else "BUY")
        price = getattr(event, "price", None)
        if price is not None and getattr(event, "symbol", "") == SYMBOL:
            mid = price
        if index % 12 == 11 and index > 40:
            yield from _orders(n, ts + 1, mid)
            n += 1


@cache
def recorded_run() -> tuple[Envelope, ...]:
    """The log of the whole run, in the order a recorder stored it (each stream numbered from 1)."""
    states = {spec.name: spec.fresh() for spec in CORES}
    seqs: dict[str, int] = {}
    log: list[Envelope] = []
    stored: set[str] = set()
    for external in _inputs():
        queue: deque[Event] = deque([external])
        while queue:
            event = queue.popleft()
            if event.id in stored:
                continue    # JetStream's dedupe window drops a copy with the same id
            stored.add(event.id)
            subject = subject_for(event)
            stream = stream_for_subject(subject).name
            seqs[stream] = seqs.get(stream, 0) + 1
            stored_ts = max(event.ts, log[-1].stored_ts if log else 0)
            envelope = Envelope(event, stream, seqs[stream], subject, stored_ts, live=False)   # type: ignore[arg-type]
            log.append(envelope)
            for spec in CORES:
                if spec.wanted(subject):
                    states[spec.name], outputs = fold(spec, states[spec.name], event)
                    queue.extend(outputs)
    return tuple(log)
