"""Router lifecycle: TCA by hand, cancels, kill switch, redelivery and byte-identical replays."""

from __future__ import annotations

from decimal import Decimal

from events import CancelIntent, KillSwitchReleased, LimitAlgo, MarketAlgo, PovAlgo, TwapAlgo, encode
from processors.router import core
from processors.router.state import RouterState
from tests.cores import router_step
from tests.router.factories import (
    NS,
    T0,
    D,
    Pipeline,
    accept,
    book,
    cancel,
    intent,
    kill,
    router_config,
    sim_config,
    timer,
    timers,
    top,
    trade,
    venue,
)


def test_tca_when_twap_completes_then_arrival_shortfall_and_vwap_slippage_match_hand_computation() -> None:
    sim = venue("sim", taker="10")
    run = Pipeline.make(router_config(sim, lot_sizes={"XYZ": D(1)}), sim_config(sim))
    order = intent("tca1", "20", algo=TwapAlgo(duration_s=10, slices=2))
    run.feed(book([("9.90", "100")], [("10.10", "10"), ("10.20", "10"), ("10.30", "100")]), top("9.90", "10.10"),
             order, accept(order), trade("10.00", "5", ts=T0 + NS), trade("10.40", "15", ts=T0 + 2 * NS, n=1),
             timer(T0 + 5 * NS))
    [done] = run.completions
    # Slice 0 takes 10 @ 10.10; slice 1 meets 10.10 already taken and takes 10 @ 10.20.
    assert done.status == "FILLED" and done.filled_quantity == D(20)
    assert done.arrival_price == D("10.00")                  # mid of 9.90 / 10.10 at the decision
    assert done.average_price == D("10.15")
    assert done.shortfall_bps == D("150.0000")               # (10.15 - 10.00) / 10.00 * 1e4
    assert done.interval_vwap == D("10.30")                  # (5 * 10.00 + 15 * 10.40) / 20
    assert done.vwap_slippage_bps == D("-145.6311")          # (10.15 - 10.30) / 10.30 * 1e4, better than VWAP
    assert done.fees == D("0.203")                           # 10 bps of 101 + 10 bps of 102
    assert done.participation == D("1.000000")
    assert (done.start_ts, done.end_ts, done.children) == (T0, T0 + 5 * NS, 2)


def test_tca_when_selling_then_a_lower_average_than_arrival_is_a_positive_cost() -> None:
    run = Pipeline.make()
    order = intent("tca2", "20", side="SELL", algo=MarketAlgo())
    run.feed(book([("9.90", "10"), ("9.80", "10")], [("10.10", "10")]), top("9.90", "10.10"), order, accept(order))
    [done] = run.completions
    assert (done.average_price, done.shortfall_bps) == (D("9.85"), D("150.0000"))
    assert done.interval_vwap is None and done.vwap_slippage_bps is None


def test_cancel_when_a_limit_child_is_partly_filled_then_child_cancelled_and_tca_on_the_partial() -> None:
    run = Pipeline.make()
    order = intent("c1", "30", algo=LimitAlgo(), limit="10.00")
    run.feed(book([("9.99", "100")], [("10.01", "100")]), top("9.99", "10.01"), order, accept(order),
             trade("10.00", "12", ts=T0 + NS), cancel(order, ts=T0 + 2 * NS))
    [child_cancel] = run.cancels
    assert child_cancel.child_id == run.children[0].child_id and "cancel intent" in child_cancel.reason
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.average_price) == ("CANCELLED", D(12), D("10.00"))
    assert done.shortfall_bps == D("0.0000") and done.end_ts == T0 + 2 * NS
    run.feed(trade("9.00", "100", ts=T0 + 3 * NS, n=1))
    assert sum(r.last_quantity for r in run.reports) == D(12)


def test_cancel_by_client_order_id_when_twap_between_slices_then_completes_and_sends_no_more_slices() -> None:
    run = Pipeline.make()
    order = intent("c2", "30", algo=TwapAlgo(duration_s=30, slices=3))
    run.feed(book([("9.99", "100")], [("10.01", "100")]), order, accept(order), *timers(T0, T0 + 12 * NS))
    run.feed(CancelIntent(id="cx", ts=T0 + 13 * NS, account="ACC1", client_order_id="c2"),
             *timers(T0 + 14 * NS, T0 + 40 * NS))
    assert len(run.children) == 2 and run.cancels == []      # IOC slices: nothing was working
    [done] = run.completions
    assert (done.status, done.filled_quantity) == ("CANCELLED", D(20))


def test_cancel_when_it_names_another_accounts_order_then_nothing_happens() -> None:
    run = Pipeline.make()
    order = intent("c3", "30", algo=LimitAlgo(), limit="9.00")
    run.feed(book([("9.99", "100")], [("10.01", "100")]), order, accept(order))
    run.feed(CancelIntent(id="cy", ts=T0 + NS, account="OTHER", order_id=order.id))
    assert run.cancels == [] and run.completions == []


def _resting_twaps() -> tuple[Pipeline, list]:
    config = router_config(venue("sim"), slice_time_in_force="GTC")
    run = Pipeline.make(config)
    orders = [intent(f"k-{a}", "30", algo=TwapAlgo(duration_s=30, slices=3), limit="9.00", account=a)
              for a in ("ACC1", "ACC2")]
    run.feed(book([("9.99", "100")], [("10.01", "100")]))
    for order in orders:
        run.feed(order, accept(order))
    run.feed(*timers(T0, T0 + 10 * NS))
    return run, orders


def test_kill_switch_for_an_account_when_twaps_rest_then_its_children_are_cancelled_and_slicing_stops() -> None:
    run, (acc1, acc2) = _resting_twaps()
    assert len(run.children) == 4
    run.feed(kill("ACC1", ts=T0 + 11 * NS), *timers(T0 + 12 * NS, T0 + 30 * NS))
    assert {c.child_id for c in run.cancels} == {c.child_id for c in run.children if c.account == "ACC1"}
    assert [c.account for c in run.children].count("ACC1") == 2
    assert [c.account for c in run.children].count("ACC2") == 3
    [done] = run.completions
    assert (done.order_id, done.status) == (acc1.id, "CANCELLED") and "kill switch" in (done.reason or "")


def test_kill_switch_when_engaged_then_later_accepted_intents_complete_cancelled_until_released() -> None:
    run, _ = _resting_twaps()
    run.feed(kill(None, ts=T0 + 11 * NS))
    assert len(run.cancels) == 4 and len(run.completions) == 2
    late = intent("late", "5", algo=MarketAlgo(), ts=T0 + 12 * NS)
    run.feed(late, accept(late))
    assert run.completions[-1].order_id == late.id and run.completions[-1].status == "CANCELLED"
    assert all(c.order_id != late.id for c in run.children)
    run.feed(KillSwitchReleased(id="rel", ts=T0 + 13 * NS, account=None, actor="ops", reason="done"))
    after = intent("after", "5", algo=MarketAlgo(), ts=T0 + 14 * NS)
    run.feed(after, accept(after))
    assert run.children[-1].order_id == after.id


def test_inputs_when_redelivered_then_no_new_children_and_no_double_counted_fills() -> None:
    run = Pipeline.make()
    order = intent("dup", "30", algo=TwapAlgo(duration_s=30, slices=3))
    decision = accept(order)
    run.feed(book([("9.99", "100")], [("10.01", "100")]), order, decision, timer(T0 + 10 * NS))
    before = len(run.log)
    state = run.router
    for event in [order, decision, timer(T0 + 10 * NS), *run.reports]:
        state, outputs = router_step(state, event)
        assert outputs == []
    assert state.parents[order.id].filled == D(20) and len(run.log) == before


def _scenario() -> list[bytes]:
    sims = [venue("sim_a", taker="7.5", latency_ms=2), venue("sim_b", taker="2", latency_ms=20)]
    run = Pipeline.make(router_config(*sims, lot_sizes={"XYZ": D(1)}), sim_config(*sims))
    twap = intent("s1", "100", algo=TwapAlgo(duration_s=30, slices=5, randomize=0.3))
    pov = intent("s2", "40", side="SELL", algo=PovAlgo(rate=0.2, max_slice=D(15)), account="ACC2")
    lim = intent("s3", "25", algo=LimitAlgo(), limit="9.995")
    run.feed(book([("9.99", "500")], [("10.01", "500")]), top("9.99", "10.01"))
    for order in (twap, pov, lim):
        run.feed(order, accept(order))
    for i in range(1, 40):
        run.feed(trade(("9.99", "10.01", "9.98")[i % 3], str(5 + i % 7), ts=T0 + i * NS, n=i), timer(T0 + i * NS))
        if i == 20:
            run.feed(cancel(lim, ts=T0 + i * NS + 1))
    return [encode(e) for e in run.outputs()]


def test_same_events_when_replayed_then_outputs_are_byte_identical() -> None:
    first, second = _scenario(), _scenario()
    assert first == second and len(first) > 20
    ids = [b.split(b'"id":"')[1][:36] for b in first]
    assert len(ids) == len(set(ids))


def test_state_when_rebuilt_by_evolve_alone_then_it_matches_the_live_state() -> None:
    run = Pipeline.make()
    order = intent("rb", "30", algo=TwapAlgo(duration_s=30, slices=3))
    run.feed(book([("9.99", "100")], [("10.01", "100")]), order, accept(order), *timers(T0, T0 + 15 * NS))
    rebuilt = RouterState(run.router.config)
    for event in run.log:
        core.evolve(rebuilt, event)
    live = run.router.parents[order.id]
    again = rebuilt.parents[order.id]
    assert (again.filled, again.last_slice, list(again.children)) == (live.filled, live.last_slice, list(live.children))
    assert core.decide(rebuilt, timer(T0 + 20 * NS)) == core.decide(run.router, timer(T0 + 20 * NS))
    assert Decimal(again.filled) == D(20)


def test_cancel_when_it_arrives_before_the_risk_decision_then_the_accepted_parent_completes_cancelled() -> None:
    run = Pipeline.make()
    order = intent("early", "10", algo=MarketAlgo())
    run.feed(book([("9.99", "100")], [("10.01", "100")]), order, cancel(order, ts=T0), accept(order))
    assert run.children == []
    [done] = run.completions
    assert (done.status, done.filled_quantity, done.average_price) == ("CANCELLED", D(0), None)


def test_schedule_when_parent_accepted_then_recorded_once_and_evolve_builds_the_parent_from_it() -> None:
    import msgspec

    from events import ParentOrderScheduled, VwapAlgo
    run = Pipeline.make()
    order = intent("plan", "30", algo=TwapAlgo(duration_s=30, slices=3, randomize=0.2))
    run.feed(top("9.99", "10.01"), order, accept(order))
    [plan] = run.of(ParentOrderScheduled)
    live = run.router.parents[order.id]
    assert (plan.slice_times, plan.start_ts, plan.arrival_price) == (live.times, live.start_ts, D("10.00"))
    assert sum(plan.slice_quantities, D(0)) == order.quantity and live.cumulative[-1] == order.quantity
    # The intent and the decision alone make no parent: evolve waits for the recorded plan.
    rebuilt = RouterState(run.router.config)
    for event in run.log:
        if not isinstance(event, ParentOrderScheduled):
            core.evolve(rebuilt, event)
    assert order.id not in rebuilt.parents
    # A recorded plan is applied as it is, never chosen again, whatever the state would choose now.
    vwap = intent("plan-v", "30", algo=VwapAlgo(duration_s=30))
    other = RouterState(run.router.config)
    core.evolve(other, vwap)
    core.evolve(other, accept(vwap))
    chosen = core.schedule(other, vwap, accept(vwap), T0)
    core.evolve(other, msgspec.structs.replace(chosen, slice_times=[T0 + 7], slice_quantities=[D(30)]))
    assert (other.parents[vwap.id].times, other.parents[vwap.id].cumulative) == ([T0 + 7], [D(30)])
