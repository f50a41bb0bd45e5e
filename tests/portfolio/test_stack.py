"""A rebalance on a running stack: targets → portfolio core → intents that risk accepts and the router fills."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from typing import Any

from events import BookSnapshot, BookTop, RiskDecision, Trade, decode, derived_id, subject_for
from events.portfolio import RebalanceProposed, TargetWeightsSet
from processors.host import ProcessorHost
from processors.portfolio.core import PortfolioConfig, PortfolioState, decide, evolve
from processors.portfolio.rebalance import RebalanceConfig
from processors.portfolio.runner import _wanted
from tests.conftest import eventually
from tests.pipeline.conftest import STREAMS, Stack, stack  # noqa: F401  (the running-stack fixture)

PRICES = {"XYZ": (D("9.99"), D("10.01")), "ABC": (D("19.98"), D("20.02"))}
DRIFT = 0.02


async def _market(running: Stack, now: int) -> None:
    """A two-sided book, its top and a print for each symbol, applied by every processor."""
    events: list[Any] = []
    for symbol, (bid, ask) in PRICES.items():
        mid = (bid + ask) / 2
        events += [
            BookSnapshot(id=derived_id(symbol, "snapshot", now), ts=now, venue="BINANCE", symbol=symbol,
                         last_update_id=100, bids=[(bid, D("5000"))], asks=[(ask, D("5000"))]),
            BookTop(id=derived_id(symbol, "top", now), ts=now, venue="BINANCE", symbol=symbol, last_update_id=100,
                    bid_price=bid, bid_size=D("5000"), ask_price=ask, ask_size=D("5000")),
            Trade(id=derived_id(symbol, "trade", now), ts=now, venue="BINANCE", symbol=symbol, price=mid,
                  quantity=D("1"))]
    # Each processor applies the ones its core reads (risk and the portfolio the tops, venue-sim the book and prints).
    reads = {name: sum(1 for event in events if host.wanted is None or host.wanted(subject_for(event)))
             for name, host in running.hosts.items()}
    before = {name: host.applied for name, host in running.hosts.items()}
    await running.bus.publish_batch(events)
    await eventually(lambda: all(host.applied >= before[name] + reads[name] for name, host in running.hosts.items()),
                     message="market data applied by every processor")


async def test_rebalance_when_targets_published_then_intents_accepted_filled_and_weights_within_drift(
        stack: Stack) -> None:  # noqa: F811
    config = PortfolioConfig(capital={"ACC1": D("1000")},
                             rebalance=RebalanceConfig(drift_threshold=DRIFT, default_lot_size=D("1")))
    host: ProcessorHost[Any] = ProcessorHost(name="portfolio", bus=stack.bus, wal_root=stack.data_dir / "wal",
                                             streams=STREAMS, state=PortfolioState(config), decide=decide,
                                             evolve=evolve, wanted=_wanted, apply_outputs=True)
    stack.hosts["portfolio"] = host
    stack.tasks.append(asyncio.create_task(host.run(stack.stop)))
    await eventually(host.caught_up.is_set, message="portfolio caught up")
    now = time.time_ns()
    await _market(stack, now)
    targets = {"XYZ": 0.5, "ABC": 0.3}
    await stack.bus.publish(TargetWeightsSet(id=derived_id("test", "targets", now), ts=now, account="ACC1",
                                             weights=targets, method="max-sharpe"))

    def positions() -> dict[str, D]:
        return {s: p.quantity for (a, s), p in stack.projections.state.positions.items() if a == "ACC1"}

    await eventually(lambda: positions() == {"XYZ": D(50), "ABC": D(15)}, timeout=30,
                     message="rebalance intents filled")
    info = await stack.bus.js.stream_info("SQ_TRADING")
    events = [decode((await stack.bus.js.get_msg("SQ_TRADING", seq)).data or b"")
              for seq in range(info.state.first_seq, info.state.last_seq + 1)]
    proposal = next(e for e in events if isinstance(e, RebalanceProposed))
    decisions = {e.order_id: e for e in events if isinstance(e, RiskDecision)}
    assert proposal.trades == {"XYZ": D(50), "ABC": D(15)}
    assert all(decisions[i].accepted for i in proposal.intent_ids) and len(proposal.intent_ids) == 2
    state = stack.projections.state
    cash = D(1000) + sum((p.cash for (a, _), p in state.positions.items() if a == "ACC1"), D(0))
    marks = {s: (bid + ask) / 2 for s, (bid, ask) in PRICES.items()}
    equity = cash + sum(q * marks[s] for s, q in positions().items())
    weights = {s: float(q * marks[s] / equity) for s, q in positions().items()}
    assert all(abs(weights[s] - w) <= DRIFT for s, w in targets.items()), weights
