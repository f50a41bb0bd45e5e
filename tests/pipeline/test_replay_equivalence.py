"""Replay: the recorded intents and market data, run through the cores offline, reproduce the live run.

The live run is the in-process stack (recorder, risk, router with its timer, venue-sim, projections)
over a real broker. Offline, each core reads the recorded WAL — both streams merged as
`store.follow.history` merges them — and decides, evolves, and evolves by its own outputs, as
`ProcessorHost` does with `apply_outputs=True`. Every output of the three cores that is in the WAL
must come out offline byte for byte (`events.codec.encode`), in the same order per core, and
nothing more.

Determinism limit, and why the scenario below waits where it does: a host reads SQ_TRADING and
SQ_MD through two ordered push consumers feeding one queue, so live it sees the two streams
interleaved in *arrival* order, while a rebuild (and this replay) merges them by the broker's
store time. Within a stream the order is the same in both; across streams it can differ when a
market-data message and a trading message reach the broker close together. A core's outputs
depend on that interleaving whenever it matters which came first — the book a child order meets
at the simulated venue, the Trade or TimerFired that makes a TWAP slice due (the child's id and
`ts` derive from its cause), the clock (`state.now`) a completion is stamped with. So the live
run publishes market data only while no order is in flight and waits until every core has
applied it. The end of the test shows the divergence when that is not so: the same recorded log
with one book update moved ahead of a child order (as a live host could have received them, had
they raced) fills that child at another price.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal as D

from events import (
    BookSnapshot,
    BookTop,
    CancelIntent,
    KillSwitchEngaged,
    OrderIntent,
    Trade,
    TwapAlgo,
    derived_id,
    encode,
    intent_id_for,
)
from events._base import Event
from events.control import CircuitBreakerTripped, TradingStateChanged
from events.subjects import subject_for
from events.trading import (
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    LimitAlgo,
    MarketAlgo,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
)
from store.follow import last_recorded
from tests.conftest import eventually
from tests.pipeline._offline import STREAMS, order_path_cores, recorded, run_offline
from tests.pipeline.conftest import LIMITS, VENUES, Stack

# Every event type the risk, router and venue-sim cores emit onto the recorded streams.
OUTPUT_TYPES = (RiskDecision, ParentOrderScheduled, ChildOrder, ChildCancel, ExecutionReport, ParentOrderCompleted,
                CircuitBreakerTripped, TradingStateChanged)


async def _publish_market(stack: Stack, events: Sequence[Event]) -> None:
    """Publish market data and wait until every core has applied all of it (nothing in flight meanwhile)."""
    before = {name: host.applied for name, host in stack.hosts.items()}
    expected = {name: sum(1 for e in events if host.wanted is None or host.wanted(subject_for(e)))
                for name, host in stack.hosts.items()}
    await stack.bus.publish_batch(list(events))
    await eventually(lambda: all(host.applied >= before[name] + expected[name] for name, host in stack.hosts.items()),
                     message="market data applied by every core")


def _book(ts: int, bid: str, ask: str, size: str = "500", update: int = 100) -> list[Event]:
    snapshot = BookSnapshot(id=derived_id("BINANCE:XYZ", "snapshot", ts), ts=ts, venue="BINANCE", symbol="XYZ",
                            last_update_id=update, bids=[(D(bid), D(size))], asks=[(D(ask), D(size))])
    top = BookTop(id=derived_id("BINANCE:XYZ", "top", ts), ts=ts, venue="BINANCE", symbol="XYZ",
                  last_update_id=update, bid_price=D(bid), bid_size=D(size), ask_price=D(ask), ask_size=D(size))
    return [snapshot, top]


def _trade(ts: int, price: str, quantity: str) -> Trade:
    return Trade(id=derived_id("BINANCE:XYZ", "trade", ts), ts=ts, venue="BINANCE", symbol="XYZ",
                 price=D(price), quantity=D(quantity))


def _intent(coid: str, side: str, quantity: str, limit: str | None, algo: object, account: str = "ACC1") -> OrderIntent:
    return OrderIntent(id=intent_id_for(account, coid), ts=time.time_ns(), account=account, client_order_id=coid,
                       symbol="XYZ", side=side, quantity=D(quantity),  # type: ignore[arg-type]
                       limit_price=D(limit) if limit else None, algo=algo)  # type: ignore[arg-type]


async def _order_status(stack: Stack, order_id: str, *statuses: str, timeout: float = 20) -> None:
    def reached() -> bool:
        order = stack.projections.state.orders.get(order_id)
        return order is not None and order.status in statuses

    await eventually(reached, timeout=timeout, message=f"order {order_id} {'/'.join(statuses)}")


def _children(stack: Stack, order_id: str, *statuses: str) -> list[object]:
    return [c for c in stack.projections.state.children.values()
            if c.order_id == order_id and (not statuses or c.status in statuses)]


async def _run_scenario(stack: Stack) -> dict[str, str]:
    """Drive a mix of intents and market data through the live stack; return the order ids by name."""
    ids: dict[str, str] = {}
    await _publish_market(stack, [*_book(time.time_ns(), "9.99", "10.01"), _trade(time.time_ns(), "10.00", "3")])

    market = _intent("mkt-1", "BUY", "5", None, MarketAlgo())
    ids["market"] = market.id
    await stack.bus.publish(market)
    await _order_status(stack, market.id, "FILLED")

    # A resting LIMIT sell above the market, filled later by a market trade through it.
    limit = _intent("lmt-1", "SELL", "3", "10.20", LimitAlgo())
    ids["limit"] = limit.id
    await stack.bus.publish(limit)
    await eventually(lambda: len(_children(stack, limit.id, "ACK")) == 1, message="limit child resting")
    await _publish_market(stack, [_trade(time.time_ns(), "10.25", "2"), *_book(time.time_ns(), "9.98", "10.02", update=101)])
    await eventually(lambda: stack.projections.state.orders[limit.id].filled_quantity == D(2), message="limit partly filled")
    await _publish_market(stack, [_trade(time.time_ns(), "10.30", "4")])
    await _order_status(stack, limit.id, "FILLED")

    # A TWAP whose second slice is sent by the router's timer.
    twap = _intent("twap-1", "BUY", "20", "10.50", TwapAlgo(duration_s=0.4, slices=2))
    ids["twap"] = twap.id
    await stack.bus.publish(twap)
    await _order_status(stack, twap.id, "FILLED", timeout=30)
    await eventually(lambda: len(_children(stack, twap.id)) == 2, message="two TWAP slices")

    rejected = _intent("too-big", "BUY", "2000000", "10.00", LimitAlgo())
    ids["rejected"] = rejected.id
    await stack.bus.publish(rejected)
    await _order_status(stack, rejected.id, "REJECTED")

    # A resting LIMIT buy below the market, then cancelled by the trader.
    resting = _intent("rest-1", "BUY", "7", "9.50", LimitAlgo())
    ids["cancelled"] = resting.id
    await stack.bus.publish(resting)
    await eventually(lambda: len(_children(stack, resting.id, "ACK")) == 1, message="resting child working")
    await stack.bus.publish(CancelIntent(id=derived_id(resting.id, "test-cancel"), ts=time.time_ns(), account="ACC1",
                                         order_id=resting.id, reason="changed my mind"))
    await _order_status(stack, resting.id, "CANCELLED")

    # Market data moves while nothing is in flight, then a slow TWAP on ACC2 is stopped by its kill switch.
    await _publish_market(stack, [*_book(time.time_ns(), "9.97", "10.03", update=102), _trade(time.time_ns(), "10.01", "1")])
    slow = _intent("twap-kill", "BUY", "40", "9.00", TwapAlgo(duration_s=30, slices=10), account="ACC2")
    ids["killed"] = slow.id
    await stack.bus.publish(slow)
    await eventually(lambda: len(_children(stack, slow.id, "ACK")) >= 1, message="slow TWAP child working")
    await stack.bus.publish(KillSwitchEngaged(id=derived_id(slow.id, "test-kill"), ts=time.time_ns(), account="ACC2",
                                              actor="risk-officer", reason="drill"))
    await _order_status(stack, slow.id, "CANCELLED")
    after = _intent("after-kill", "BUY", "1", "10.00", LimitAlgo(), account="ACC2")
    ids["after_kill"] = after.id
    await stack.bus.publish(after)
    await _order_status(stack, after.id, "REJECTED")
    return ids


async def _wal_caught_up(stack: Stack) -> None:
    """Wait until the recorder has written every message the broker holds (timer ticks keep coming; they cause nothing)."""
    async def caught_up() -> bool:
        recorded_seqs = last_recorded(stack.data_dir / "wal", STREAMS)
        for stream in STREAMS:
            info = await stack.bus.js.stream_info(stream)
            if recorded_seqs[stream] < info.state.last_seq - 2:   # a tick or two may be in flight
                return False
        return True

    await eventually(caught_up, timeout=20, message="WAL caught up with the broker")


async def test_recorded_run_replayed_through_the_cores_offline_reproduces_every_output_byte_for_byte(stack: Stack) -> None:
    ids = await _run_scenario(stack)
    # Every output is an answer to some input: once the last order settled, wait for the WAL to hold it all.
    await _wal_caught_up(stack)
    log = recorded(stack.data_dir / "wal")
    live = [e.event for e in log if isinstance(e.event, OUTPUT_TYPES)]
    # Outputs answer inputs; drop the tail of the log that came after the last recorded output, so
    # an input whose answer the recorder had not yet written cannot count as "extra".
    last_output = max(i for i, e in enumerate(log) if isinstance(e.event, OUTPUT_TYPES))
    cores = run_offline(order_path_cores(VENUES, LIMITS), log[:last_output + 1])

    offline = [o for core in cores.values() for o in core.outputs]
    assert len({o.id for o in offline}) == len(offline), "a core produced the same output twice"
    live_by_id = {e.id: encode(e) for e in live}
    offline_by_id = {o.id: encode(o) for o in offline}
    missing = sorted(set(live_by_id) - set(offline_by_id))
    extra = sorted(set(offline_by_id) - set(live_by_id))
    assert not missing, f"live outputs not reproduced offline: {[live_by_id[i][:200] for i in missing]}"
    assert not extra, f"offline outputs the live run never published: {[offline_by_id[i][:200] for i in extra]}"
    differing = [i for i in live_by_id if live_by_id[i] != offline_by_id[i]]
    assert not differing, f"outputs that differ: {[(live_by_id[i], offline_by_id[i]) for i in differing]}"
    # Per core, the log holds its outputs in the order it decided them.
    for core in cores.values():
        produced = {o.id for o in core.outputs}
        assert [e.id for e in live if e.id in produced] == [o.id for o in core.outputs], core.name

    # The scenario did exercise every path.
    kinds = {type(o).__name__ for o in offline}
    assert kinds >= {"RiskDecision", "ParentOrderScheduled", "ChildOrder", "ChildCancel", "ExecutionReport",
                     "ParentOrderCompleted"}
    decisions = {o.order_id: o.accepted for o in offline if isinstance(o, RiskDecision)}
    assert decisions == {ids["market"]: True, ids["limit"]: True, ids["twap"]: True, ids["rejected"]: False,
                         ids["cancelled"]: True, ids["killed"]: True, ids["after_kill"]: False}
    done = {o.order_id: o.status for o in offline if isinstance(o, ParentOrderCompleted)}
    assert done == {ids["market"]: "FILLED", ids["limit"]: "FILLED", ids["twap"]: "FILLED",
                    ids["cancelled"]: "CANCELLED", ids["killed"]: "CANCELLED"}
    twap_children = [o for o in offline if isinstance(o, ChildOrder) and o.order_id == ids["twap"]]
    assert [c.slice_index for c in twap_children] == [0, 1]
    cancels = [o for o in offline if isinstance(o, ChildCancel) and o.order_id == ids["killed"]]
    assert {c.causation_id for c in cancels} == {derived_id(ids["killed"], "test-kill")}
    assert len({c.id for c in cancels}) == len(cancels) >= 2         # risk's and the router's cancels

    # The determinism limit: move the first book update recorded after the MARKET child ahead of it,
    # as a host could have seen them live had they raced on their two streams; the fill changes.
    at = next(i for i, e in enumerate(log) if isinstance(e.event, ChildOrder) and e.event.order_id == ids["market"])
    moved = next(i for i in range(at, len(log)) if isinstance(log[i].event, BookSnapshot))
    raced = [*log[:at], log[moved], *log[at:moved], *log[moved + 1:last_output + 1]]
    again = run_offline(order_path_cores(VENUES, LIMITS), raced)

    def market_fill(outputs: Sequence[Event]) -> ExecutionReport:
        return next(o for o in outputs if isinstance(o, ExecutionReport) and o.order_id == ids["market"]
                    and o.status == "FILLED")

    assert market_fill(cores["venue-sim"].outputs).last_price == D("10.01")
    assert market_fill(again["venue-sim"].outputs).last_price == D("10.02")
