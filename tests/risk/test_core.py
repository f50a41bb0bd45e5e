"""The risk core's events: decision shape, redelivery, breakers, kill switch, daily loss, limit changes, replay."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from events import (
    ChildCancel,
    CircuitBreakerTripped,
    DeadLetter,
    EventDecodeError,
    Limits,
    LimitsChanged,
    RiskDecision,
    TradeSummary,
    TradingStateChanged,
    decode_for_subject,
    derived_id,
)
from processors.risk import RiskState, decide, evolve
from tests.cores import risk_step as step
from tests.risk.factories import (
    SECOND,
    T0,
    book_top,
    child,
    fill,
    intent,
    kill,
    report,
    run,
    state_with,
    trade,
)


def test_decision_when_intent_decided_then_ids_and_links_derive_from_intent() -> None:
    state = state_with({"max_order_quantity": "5"})
    order = intent(id="01936f7e-8c1a-7b2e-9d4f-3a5b6c7d8e9f", limit_price=None)
    (decision,) = run(state, order)
    assert isinstance(decision, RiskDecision)
    assert decision.id == derived_id(order.id, "risk-decision")
    assert (decision.causation_id, decision.correlation_id, decision.order_id) == (order.id, order.id, order.id)
    assert (decision.ts, decision.account, decision.symbol, decision.checks_run) == (T0, "ACC1", "BTCUSDT", 6)


def test_intent_when_redelivered_then_not_decided_twice_and_state_unchanged() -> None:
    state = state_with({"max_open_orders": 5})
    order = intent()
    assert len(run(state, order)) == 1
    before = pickle.dumps(state)
    assert run(state, order) == []
    assert pickle.dumps(state) == before
    assert state.book.open_orders("ACC1") == 1


def test_decide_when_called_then_state_not_mutated() -> None:
    state = state_with({"max_order_notional": "1000", "max_gross_exposure": "10", "capital": "5",
                        "margin_rate": "0.5", "breaker_move_bps": 10, "error_burst_count": 1,
                        "max_daily_loss": "1"})
    run(state, book_top("99", "101"), trade("100"))
    fill(state, "ACC1", "BTCUSDT", "BUY", "1", "100")
    order = intent()
    sent = child(order)
    run(state, order, sent)
    before = pickle.dumps(state)
    for event in (intent(), trade("150"), report(sent, "REJECTED"), kill(None), trade("1"),
                  LimitsChanged(id="l", ts=T0, limits=Limits(max_position=Decimal(-1)), actor="ops")):
        assert decide(state, event)
        assert pickle.dumps(state) == before


# --- circuit breakers ----------------------------------------------------------------------------

def breaker_state() -> RiskState:
    return state_with({}, symbols={"BTCUSDT": {"breaker_move_bps": 500, "breaker_window_s": 60,
                                               "breaker_cooldown_s": 300}})


def test_trade_when_move_within_window_at_limit_then_no_trip_and_over_limit_trips() -> None:
    state = breaker_state()
    assert run(state, trade("100", ts=T0), trade("104.99", ts=T0 + SECOND), trade("105", ts=T0 + 2 * SECOND)) == []
    (tripped,) = run(state, trade("105.01", ts=T0 + 3 * SECOND))
    assert isinstance(tripped, CircuitBreakerTripped)
    assert (tripped.symbol, tripped.cause, tripped.until_ts) == ("BTCUSDT", "price_move", T0 + 303 * SECOND)
    assert tripped.detail == "price 105.01 moved 501.00 bps from 100 within 60 s, over limit 500 bps for BTCUSDT"
    assert not decide(state, intent(ts=T0 + 4 * SECOND))[0].accepted


def test_trade_when_fall_over_limit_then_trips() -> None:
    state = breaker_state()
    run(state, trade("100", ts=T0))
    assert run(state, trade("95", ts=T0 + SECOND)) == []
    assert isinstance(run(state, trade("94.99", ts=T0 + SECOND))[0], CircuitBreakerTripped)


def test_trade_when_move_spread_over_more_than_window_then_no_trip() -> None:
    state = breaker_state()
    run(state, trade("100", ts=T0), trade("103", ts=T0 + 30 * SECOND))
    assert run(state, trade("106", ts=T0 + 61 * SECOND)) == []          # 100 has left the window


def test_trade_when_cooldown_over_then_symbol_trades_and_old_move_forgotten() -> None:
    state = breaker_state()
    run(state, trade("100", ts=T0), trade("110", ts=T0 + SECOND))
    assert run(state, trade("110", ts=T0 + 302 * SECOND)) == []
    assert decide(state, intent(ts=T0 + 301 * SECOND))[0].accepted


def summary(low: str, high: str, last: str, ts: int) -> TradeSummary:
    """What the aggregator publishes for a burst of BTCUSDT trades (risk reads these, not each trade)."""
    return TradeSummary(id=f"summary-{ts}-{low}-{high}", ts=ts, venue="SIM", symbol="BTCUSDT", first_ts=ts - 40_000_000,
                        price=Decimal(last), high=Decimal(high), low=Decimal(low), volume=Decimal(5), quote_volume=Decimal(5) * Decimal(last),
                        trade_count=5)


def test_summary_when_its_high_moved_over_limit_then_trips_though_its_last_price_came_back() -> None:
    state = breaker_state()
    assert run(state, summary("100", "100", "100", T0)) == []
    (tripped,) = run(state, summary("101", "105.01", "101", T0 + SECOND))
    assert isinstance(tripped, CircuitBreakerTripped)
    assert tripped.detail == "price 105.01 moved 501.00 bps from 100 within 60 s, over limit 500 bps for BTCUSDT"


def test_summary_extremes_stay_in_the_window_for_later_moves() -> None:
    state = breaker_state()
    run(state, summary("96", "100", "100", T0))                 # its low, not its last price, is the window's low
    assert run(state, summary("100", "100.7", "100.7", T0 + SECOND)) == []
    assert isinstance(run(state, summary("100", "100.81", "100.81", T0 + 2 * SECOND))[0], CircuitBreakerTripped)


def test_summary_sets_the_last_price_marks_use() -> None:
    state = breaker_state()
    run(state, summary("99", "101", "100.5", T0))
    assert state.markets["BTCUSDT"].last_trade == Decimal("100.5")


def test_report_when_rejects_reach_burst_count_then_symbol_tripped() -> None:
    state = state_with({}, symbols={"BTCUSDT": {"error_burst_count": 3, "error_burst_window_s": 10}})
    orders = [intent() for _ in range(4)]
    sent = [child(o) for o in orders]
    run(state, *orders, *sent)
    assert run(state, report(sent[0], "REJECTED", ts=T0), report(sent[1], "REJECTED", ts=T0 + 5 * SECOND)) == []
    (tripped,) = run(state, report(sent[2], "REJECTED", ts=T0 + 9 * SECOND))
    assert tripped.cause == "error_burst"
    assert tripped.detail == "3 venue rejects within 10 s reached limit 3 for BTCUSDT"


def test_report_when_rejects_spread_beyond_window_or_redelivered_then_no_trip() -> None:
    state = state_with({}, symbols={"BTCUSDT": {"error_burst_count": 2, "error_burst_window_s": 10}})
    orders = [intent() for _ in range(2)]
    sent = [child(o) for o in orders]
    first = report(sent[0], "REJECTED", ts=T0)
    run(state, *orders, *sent, first)
    assert run(state, first) == []                                       # redelivered: one reject, not two
    assert run(state, report(sent[1], "REJECTED", ts=T0 + 10 * SECOND)) == []


# --- kill switch ---------------------------------------------------------------------------------

def test_kill_switch_when_engaged_then_working_children_of_account_cancelled() -> None:
    state = state_with({})
    mine, theirs = intent(), intent(account="ACC2")
    kids = [child(mine, "0.5", 0), child(mine, "0.5", 1), child(theirs)]
    done = child(intent(), index=0)
    run(state, mine, theirs, *kids, done, report(done, "FILLED", "1", "100", cum="1"))
    switch = kill("ACC1")
    cancels = run(state, switch)
    assert all(isinstance(c, ChildCancel) for c in cancels)
    assert sorted(c.child_id for c in cancels) == sorted(k.child_id for k in kids[:2])
    assert [c.id for c in cancels] == [derived_id(switch.id, "child-cancel", i) for i in range(2)]
    assert all(c.causation_id == switch.id and c.order_id == mine.id for c in cancels)
    assert state.book.open_orders("ACC1") == 0 and state.book.open_orders("ACC2") == 1


def test_kill_switch_when_global_then_every_working_child_cancelled() -> None:
    state = state_with({})
    orders = [intent(account=a) for a in ("ACC1", "ACC2", "ACC3")]
    run(state, *orders, *[child(o) for o in orders])
    assert len(run(state, kill(None))) == 3


# --- daily loss ----------------------------------------------------------------------------------

def loss_state() -> RiskState:
    state = state_with({"max_daily_loss": "100"}, collar_reference="last_trade")
    fill(state, "ACC1", "BTCUSDT", "BUY", "10", "100")
    return state


def test_mark_when_daily_loss_at_limit_then_active_and_over_limit_then_reducing() -> None:
    state = loss_state()
    assert run(state, trade("90", ts=T0 + SECOND)) == []                 # loss exactly 100
    (changed,) = run(state, trade("89.99", ts=T0 + 2 * SECOND))
    assert isinstance(changed, TradingStateChanged)
    assert (changed.account, changed.state) == ("ACC1", "REDUCING")
    assert changed.reason == "daily loss 100.10 over limit 100 for ACC1"
    assert state.trading_state("ACC1") == "REDUCING"
    assert run(state, trade("80", ts=T0 + 3 * SECOND)) == []             # moved once
    assert not decide(state, intent(side="BUY"))[0].accepted
    assert decide(state, intent(side="SELL", quantity="10"))[0].accepted


def test_fill_when_realized_loss_and_fee_over_limit_then_reducing() -> None:
    state = loss_state()
    run(state, trade("100", ts=T0))
    out = fill(state, "ACC1", "BTCUSDT", "SELL", "10", "90", ts=T0 + SECOND, fee="0.01")
    assert [type(e) for e in out] == [TradingStateChanged]


def test_daily_loss_when_new_utc_day_then_measured_from_that_day() -> None:
    state = loss_state()
    day = 86_400 * SECOND
    run(state, trade("95", ts=T0 + SECOND))                              # yesterday: -50
    next_day = (T0 // day + 1) * day
    assert run(state, trade("86", ts=next_day + SECOND)) == []            # -90 today
    assert len(run(state, trade("84.99", ts=next_day + 2 * SECOND))) == 1  # -100.1 today


# --- limits at run time --------------------------------------------------------------------------

def test_limits_changed_when_valid_then_new_limit_applies_to_next_intent() -> None:
    state = state_with({"max_order_quantity": "1"})
    assert not decide(state, intent(quantity="2"))[0].accepted
    assert run(state, LimitsChanged(id="l1", ts=T0, account="ACC1", limits=Limits(max_order_quantity=Decimal(2)),
                                    actor="ops")) == []
    assert decide(state, intent(quantity="2"))[0].accepted
    assert not decide(state, intent(account="ACC2", quantity="2"))[0].accepted
    run(state, LimitsChanged(id="l2", ts=T0, limits=Limits(max_order_quantity=None), actor="ops"))
    assert decide(state, intent(account="ACC2", quantity="2"))[0].accepted


def test_limits_changed_when_invalid_then_dead_lettered_naming_fields_and_limits_kept() -> None:
    state = state_with({"max_order_quantity": "1"})
    change = LimitsChanged(id="l3", ts=T0, symbol="BTCUSDT", limits=Limits(max_order_quantity=Decimal(-5), capital=Decimal(9)),
                           actor="ops")
    (letter,) = run(state, change)
    assert isinstance(letter, DeadLetter)
    assert "symbols.BTCUSDT.max_order_quantity: -5 must be greater than 0" in letter.reason
    assert "symbols.BTCUSDT.capital: capital is account-wide" in letter.reason
    assert letter.id == derived_id("l3", "dead-letter") and letter.subject.startswith("sq.ctl.")
    assert not decide(state, intent(quantity="2"))[0].accepted


def _limits_changed(limits: str) -> bytes:
    return (b'{"type": "LimitsChanged", "id": "l4", "ts": 1, "actor": "ops", "limits": ' + limits.encode() + b"}")


def test_limits_changed_from_json_when_decimal_strings_and_null_then_typed_once_and_applied() -> None:
    change = decode_for_subject("sq.ctl.limits.all", _limits_changed(
        '{"max_order_quantity": "2", "max_position": null, "max_open_orders": 5, "restricted": false}'))
    assert isinstance(change, LimitsChanged)
    assert change.limits == Limits(max_order_quantity=Decimal(2), max_position=None, max_open_orders=5,
                                   restricted=False)
    state = state_with({"max_order_quantity": "1", "max_position": "1"})
    assert run(state, change) == []
    assert decide(state, intent(quantity="2"))[0].accepted


@pytest.mark.parametrize(("limits", "reason"), [
    ('{"max_qty": "1"}', "Object contains unknown field `max_qty` - at `$.limits`"),
    ('{"max_open_orders": "three"}', "Expected `int | null`, got `str` - at `$.limits.max_open_orders`"),
    ('{"max_position": "none"}', "Invalid decimal string - at `$.limits.max_position`"),
])
def test_limits_changed_when_unknown_name_or_wrong_type_then_refused_at_decode_naming_the_field(
        limits: str, reason: str) -> None:
    with pytest.raises(EventDecodeError) as refused:
        decode_for_subject("sq.ctl.limits.all", _limits_changed(limits))
    assert refused.value.reason == reason


# --- replay --------------------------------------------------------------------------------------

def test_replay_when_inputs_and_outputs_evolved_then_state_decides_like_live() -> None:
    live = state_with({"max_open_orders": 3, "max_orders_per_window": 10, "max_position": "4",
                       "max_daily_loss": "50"}, collar_reference="last_trade")
    log: list[object] = []
    events = [trade("100"), *(intent(quantity="1") for _ in range(5))]
    first = events[1]
    sent = child(first)
    events += [sent, report(sent, "FILLED", "1", "100", cum="1"), trade("40", ts=T0 + SECOND)]
    for event in events:
        live, outputs = step(live, event)
        log += [event, *outputs]
    replayed = state_with({"max_open_orders": 3, "max_orders_per_window": 10, "max_position": "4",
                           "max_daily_loss": "50"}, collar_reference="last_trade")
    for event in log:
        evolve(replayed, event)
    probe = intent(ts=T0 + 2 * SECOND)
    assert decide(replayed, probe) == decide(live, probe)
    assert pickle.dumps(replayed.book) == pickle.dumps(live.book)
    assert replayed.trading_state("ACC1") == live.trading_state("ACC1") == "REDUCING"
