"""Every pre-trade check at, just under and just over its limit, with the reason it gives."""

from __future__ import annotations

import pytest

from events import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    KillSwitchReleased,
    RiskDecision,
    TradingStateChanged,
)
from processors.risk import RiskState, decide
from tests.risk.factories import SECOND, T0, book_top, child, fill, intent, kill, run, state_with


def verdict(state: RiskState, order) -> RiskDecision:
    (decision,) = decide(state, order)
    assert isinstance(decision, RiskDecision)
    return decision


def failed(state: RiskState, order) -> dict[str, str]:
    return {f.check: f.reason for f in verdict(state, order).failures}


@pytest.fixture
def priced() -> RiskState:
    """No limits beyond the given ones; BTCUSDT mid 100, ETHUSDT mid 100."""
    state = state_with({})
    run(state, book_top("99.9", "100.1"), book_top("99.9", "100.1", symbol="ETHUSDT"))
    return state


def with_limits(limits: dict, **file) -> RiskState:
    state = state_with(limits, **file)
    run(state, book_top("99.9", "100.1"), book_top("99.9", "100.1", symbol="ETHUSDT"))
    return state


# --- max order quantity --------------------------------------------------------------------------

@pytest.mark.parametrize("quantity", ["9.999", "10"])
def test_intent_when_quantity_at_or_under_limit_then_accepted(quantity: str) -> None:
    decision = verdict(with_limits({"max_order_quantity": "10"}), intent(quantity=quantity))
    assert decision.accepted and decision.failures == []


def test_intent_when_quantity_over_limit_then_rejected_with_reason() -> None:
    decision = verdict(with_limits({"max_order_quantity": "10"}), intent(quantity="10.001"))
    assert not decision.accepted
    (failure,) = decision.failures
    assert failure.check == "max_order_quantity"
    assert failure.reason == "quantity 10.001 over limit 10 for ACC1/BTCUSDT"
    assert (failure.value, failure.limit) == ("10.001", "10")


# --- max order notional --------------------------------------------------------------------------

@pytest.mark.parametrize("quantity", ["249.99", "250"])
def test_intent_when_notional_at_or_under_limit_then_accepted(quantity: str) -> None:
    assert verdict(with_limits({"max_order_notional": "25000"}), intent(quantity=quantity, limit_price="100.00")).accepted


def test_intent_when_notional_over_limit_then_rejected_with_reason() -> None:
    reasons = failed(with_limits({"max_order_notional": "25000"}), intent(quantity="250.01", limit_price="100.00"))
    assert reasons == {"max_order_notional": "notional 25001.0000 over limit 25000 for ACC1/BTCUSDT"}


def test_market_intent_when_notional_at_mid_over_limit_then_rejected() -> None:
    state = with_limits({"max_order_notional": "25000"})
    assert verdict(state, intent(quantity="250", limit_price=None)).accepted
    assert "max_order_notional" in failed(state, intent(quantity="250.01", limit_price=None))


def test_market_intent_when_no_reference_price_then_rejected_naming_it() -> None:
    reasons = failed(state_with({"max_order_notional": "25000"}), intent(limit_price=None))
    assert "no reference price" in reasons["max_order_notional"]


def test_market_intent_when_reference_is_last_trade_then_valued_at_last_trade() -> None:
    state = state_with({"max_order_notional": "1000"}, collar_reference="last_trade")
    from tests.risk.factories import trade
    run(state, book_top("99", "101"), trade("50"))
    assert verdict(state, intent(quantity="20", limit_price=None)).accepted
    assert not verdict(state, intent(quantity="20.01", limit_price=None)).accepted


# --- price collar --------------------------------------------------------------------------------

@pytest.mark.parametrize("price", ["101", "100.99", "99", "99.01"])
def test_intent_when_price_at_or_inside_collar_then_accepted(price: str) -> None:
    assert verdict(with_limits({"price_collar_bps": 100}), intent(limit_price=price)).accepted


@pytest.mark.parametrize("price", ["101.01", "98.99"])
def test_intent_when_price_outside_collar_then_rejected_with_reason(price: str) -> None:
    reasons = failed(with_limits({"price_collar_bps": 100}), intent(limit_price=price))
    assert reasons["price_collar"] == f"limit price {price} is 101.00 bps from reference 100.0, over collar 100 bps " \
                                      "for ACC1/BTCUSDT"


def test_intent_when_no_reference_price_to_collar_then_rejected() -> None:
    assert "no reference price" in failed(state_with({"price_collar_bps": 100}), intent())["price_collar"]


# --- projected position --------------------------------------------------------------------------

@pytest.fixture
def holding() -> RiskState:
    """Long 3 BTCUSDT with one open BUY parent of 1; max position 5."""
    state = with_limits({"max_position": "5"})
    fill(state, "ACC1", "BTCUSDT", "BUY", "3", "100")
    run(state, intent(quantity="1"))
    return state


@pytest.mark.parametrize("quantity", ["0.999", "1"])
def test_intent_when_projected_position_at_or_under_limit_then_accepted(holding: RiskState, quantity: str) -> None:
    assert verdict(holding, intent(quantity=quantity)).accepted


def test_intent_when_projected_position_over_limit_then_rejected_with_reason(holding: RiskState) -> None:
    assert failed(holding, intent(quantity="1.001"))["max_position"] == (
        "projected position 5.001 over limit 5 for ACC1/BTCUSDT (position 3, open BUY 1, order 1.001)")


def test_sell_intent_when_projected_short_over_limit_then_rejected(holding: RiskState) -> None:
    assert verdict(holding, intent(side="SELL", quantity="8")).accepted
    assert "max_position" in failed(holding, intent(side="SELL", quantity="8.001"))


# --- gross and net exposure ----------------------------------------------------------------------

@pytest.fixture
def eth_long() -> RiskState:
    """Long 2 ETHUSDT marked at 100 (value 200); gross limit 1000, net limit 500."""
    state = with_limits({"max_gross_exposure": "1000", "max_net_exposure": "500"})
    fill(state, "ACC1", "ETHUSDT", "BUY", "2", "90")
    return state


@pytest.mark.parametrize("quantity", ["7.99", "8"])
def test_intent_when_gross_exposure_at_or_under_limit_then_accepted(eth_long: RiskState, quantity: str) -> None:
    assert "max_gross_exposure" not in failed(eth_long, intent(side="SELL", quantity=quantity))


def test_intent_when_gross_exposure_over_limit_then_rejected_with_reason(eth_long: RiskState) -> None:
    assert failed(eth_long, intent(side="SELL", quantity="8.01"))["max_gross_exposure"] == (
        "projected gross exposure 1001.00 over limit 1000 for ACC1 (order ACC1/BTCUSDT)")


@pytest.mark.parametrize(("side", "quantity", "accepted"), [
    ("BUY", "2.99", True), ("BUY", "3", True), ("BUY", "3.01", False),
    ("SELL", "6.99", True), ("SELL", "7", True), ("SELL", "7.01", False),
])
def test_intent_when_net_exposure_around_limit_then_rejected_only_over_it(
        eth_long: RiskState, side: str, quantity: str, accepted: bool) -> None:
    reasons = failed(eth_long, intent(side=side, quantity=quantity))
    assert ("max_net_exposure" not in reasons) is accepted
    if not accepted:
        assert reasons["max_net_exposure"].startswith("projected net exposure 501.0")


def test_intent_when_net_exposure_over_limit_then_reason_names_value_limit_and_order(eth_long: RiskState) -> None:
    assert failed(eth_long, intent(quantity="3.01"))["max_net_exposure"] == (
        "projected net exposure 501.00 over limit 500 for ACC1 (order ACC1/BTCUSDT)")


def test_market_intent_when_no_reference_price_then_each_exposure_check_says_so() -> None:
    state = state_with({"max_gross_exposure": "1000", "max_net_exposure": "500", "capital": "1000",
                        "margin_rate": "0.1"})
    reasons = failed(state, intent(limit_price=None))
    expected = ("market order for ACC1/BTCUSDT has no reference price (no mid or last trade) to value it")
    assert {check: reasons[check] for check in ("max_gross_exposure", "max_net_exposure", "margin")} == {
        "max_gross_exposure": expected, "max_net_exposure": expected, "margin": expected}


# --- margin against equity -----------------------------------------------------------------------

@pytest.mark.parametrize(("quantity", "accepted"), [("99.99", True), ("100", True), ("100.01", False)])
def test_intent_when_margin_around_equity_then_rejected_only_over_it(quantity: str, accepted: bool) -> None:
    state = with_limits({"capital": "1000", "margin_rate": "0.1"})
    reasons = failed(state, intent(quantity=quantity))
    assert ("margin" not in reasons) is accepted
    if not accepted:
        assert reasons["margin"] == "margin required 1000.100 over equity 1000 for ACC1 (order ACC1/BTCUSDT)"


def test_intent_when_losses_shrink_equity_then_margin_check_tighter() -> None:
    state = with_limits({"capital": "1000", "margin_rate": "0.1"})
    fill(state, "ACC1", "ETHUSDT", "BUY", "1", "200")      # marked at 100: equity 900, margin 10
    assert verdict(state, intent(quantity="89")).accepted   # 890 + 10 = 900
    assert "margin" in failed(state, intent(quantity="89.01"))


# --- order rate ----------------------------------------------------------------------------------

def test_intent_when_order_rate_at_limit_then_accepted_and_over_limit_rejected() -> None:
    state = with_limits({"max_orders_per_window": 3, "order_window_s": 1})
    run(state, intent(ts=T0), intent(ts=T0 + SECOND // 10))
    assert verdict(state, intent(ts=T0 + SECOND // 2)).accepted            # third in the window
    run(state, intent(ts=T0 + SECOND // 2))
    assert failed(state, intent(ts=T0 + SECOND // 2))["order_rate"] == "order rate 4 in 1 s over limit 3 for ACC1"


def test_intent_when_oldest_order_leaves_window_then_accepted_again() -> None:
    state = with_limits({"max_orders_per_window": 3, "order_window_s": 1})
    run(state, intent(ts=T0), intent(ts=T0 + 1), intent(ts=T0 + 2))
    assert not verdict(state, intent(ts=T0 + SECOND - 1)).accepted
    assert verdict(state, intent(ts=T0 + SECOND)).accepted     # window is (ts - 1 s, ts]


def test_intent_when_earlier_intents_were_rejected_then_they_do_not_count_toward_rate() -> None:
    state = with_limits({"max_orders_per_window": 1, "max_order_quantity": "1"})
    run(state, intent(quantity="5"), intent(quantity="5"))
    assert verdict(state, intent()).accepted


# --- max open orders -----------------------------------------------------------------------------

def test_intent_when_open_orders_below_limit_then_accepted_and_at_limit_rejected() -> None:
    state = with_limits({"max_open_orders": 2})
    run(state, intent())
    assert verdict(state, intent()).accepted
    run(state, intent())
    assert failed(state, intent())["max_open_orders"] == "open orders 3 with this one over limit 2 for ACC1"


def test_intent_when_open_order_filled_then_slot_freed() -> None:
    from tests.risk.factories import report
    state = with_limits({"max_open_orders": 1})
    order = intent(quantity="1")
    sent = child(order)
    run(state, order, sent)
    assert not verdict(state, intent()).accepted
    run(state, report(sent, "FILLED", "1", "100", cum="1"))
    assert verdict(state, intent()).accepted


# --- duplicate client order id -------------------------------------------------------------------

def test_intent_when_client_order_id_reused_with_new_id_then_rejected_with_reason(priced: RiskState) -> None:
    first = intent(client_order_id="strategy-7-0001", id="id-1")
    run(priced, first)
    reasons = failed(priced, intent(client_order_id="strategy-7-0001", id="id-2", ts=first.ts + 1_500_000_000))
    assert reasons == {"duplicate_client_order_id": "client_order_id strategy-7-0001 already used for ACC1 "
                                                    "1.5 s earlier, within the 86400 s dedupe window"}


def test_intent_when_client_order_id_used_by_other_account_then_accepted(priced: RiskState) -> None:
    run(priced, intent(client_order_id="x-1"))
    assert verdict(priced, intent(account="ACC2", client_order_id="x-1")).accepted


def test_intent_when_client_order_id_older_than_dedupe_window_then_accepted() -> None:
    state = state_with({}, dedupe_window_s=60)
    run(state, intent(client_order_id="c", ts=T0))
    assert not verdict(state, intent(client_order_id="c", ts=T0 + 30 * SECOND)).accepted
    run(state, intent(ts=T0 + 60 * SECOND))                    # moves the window past the first
    assert verdict(state, intent(client_order_id="c", ts=T0 + 61 * SECOND)).accepted


# --- restricted symbols --------------------------------------------------------------------------

def test_intent_when_symbol_restricted_then_rejected_and_account_override_lifts_it() -> None:
    state = with_limits({}, symbols={"BTCUSDT": {"restricted": True}},
                        account_symbols={"ACC2": {"BTCUSDT": {"restricted": False}}})
    assert failed(state, intent())["restricted_symbol"] == "symbol BTCUSDT is restricted for ACC1"
    assert verdict(state, intent(symbol="ETHUSDT")).accepted
    assert verdict(state, intent(account="ACC2")).accepted


# --- trading state -------------------------------------------------------------------------------

def test_intent_when_account_halted_then_rejected(priced: RiskState) -> None:
    run(priced, TradingStateChanged(id="s1", ts=T0, account="ACC1", state="HALTED", reason="ops"))
    assert failed(priced, intent())["trading_state"] == "trading state HALTED for ACC1"
    assert verdict(priced, intent(account="ACC2")).accepted


@pytest.mark.parametrize(("side", "quantity", "accepted"), [
    ("SELL", "1.999", True), ("SELL", "2", True), ("SELL", "2.001", False), ("BUY", "0.1", False),
])
def test_intent_when_reducing_then_only_position_reducing_intents_accepted(
        priced: RiskState, side: str, quantity: str, accepted: bool) -> None:
    fill(priced, "ACC1", "BTCUSDT", "BUY", "2", "100")
    run(priced, TradingStateChanged(id="s2", ts=T0, account=None, state="REDUCING", reason="ops"))
    assert verdict(priced, intent(side=side, quantity=quantity)).accepted is accepted


def test_intent_when_reducing_and_open_sells_already_cover_position_then_rejected(priced: RiskState) -> None:
    fill(priced, "ACC1", "BTCUSDT", "BUY", "2", "100")
    run(priced, intent(side="SELL", quantity="1.5"),
        TradingStateChanged(id="s3", ts=T0, account="ACC1", state="REDUCING", reason="ops"))
    assert verdict(priced, intent(side="SELL", quantity="0.5")).accepted
    assert "does not reduce position 2" in failed(priced, intent(side="SELL", quantity="0.501"))["trading_state"]


def test_intent_when_flat_and_reducing_then_any_intent_rejected(priced: RiskState) -> None:
    run(priced, TradingStateChanged(id="s4", ts=T0, account="ACC1", state="REDUCING", reason="ops"))
    assert "trading_state" in failed(priced, intent(side="SELL"))


# --- circuit breaker -----------------------------------------------------------------------------

def test_intent_when_symbol_breaker_tripped_then_rejected_until_until_ts(priced: RiskState) -> None:
    run(priced, CircuitBreakerTripped(id="b1", ts=T0, symbol="BTCUSDT", cause="manual", detail="ops",
                                      until_ts=T0 + SECOND))
    assert failed(priced, intent(ts=T0 + SECOND - 1))["circuit_breaker"] == (
        f"circuit breaker (manual) halts BTCUSDT until ts {T0 + SECOND}")
    assert verdict(priced, intent(symbol="ETHUSDT")).accepted
    assert verdict(priced, intent(ts=T0 + SECOND)).accepted


def test_intent_when_breaker_reset_then_accepted(priced: RiskState) -> None:
    run(priced, CircuitBreakerTripped(id="b2", ts=T0, symbol="BTCUSDT", cause="manual", detail="ops"))
    assert "until reset" in failed(priced, intent(ts=T0 + 10**15))["circuit_breaker"]
    run(priced, CircuitBreakerReset(id="b3", ts=T0, symbol="BTCUSDT", actor="ops"))
    assert verdict(priced, intent()).accepted


# --- kill switch ---------------------------------------------------------------------------------

def test_intent_when_account_kill_switch_engaged_then_rejected_and_others_accepted(priced: RiskState) -> None:
    run(priced, kill("ACC1"))
    assert failed(priced, intent())["kill_switch"] == "kill switch engaged for ACC1; ACC1/BTCUSDT refused"
    assert verdict(priced, intent(account="ACC2")).accepted


def test_intent_when_global_kill_switch_engaged_then_every_account_rejected_until_released(priced: RiskState) -> None:
    run(priced, kill(None))
    assert "global kill switch" in failed(priced, intent(account="ACC2"))["kill_switch"]
    run(priced, KillSwitchReleased(id="r1", ts=T0, account=None, actor="ops", reason="done"))
    assert verdict(priced, intent(account="ACC2")).accepted


# --- all at once ---------------------------------------------------------------------------------

def test_intent_when_several_limits_broken_then_every_failure_listed() -> None:
    state = with_limits({"max_order_quantity": "1", "max_order_notional": "50", "price_collar_bps": 10,
                         "max_position": "1"}, symbols={"BTCUSDT": {"restricted": True}})
    decision = verdict(state, intent(quantity="2", limit_price="120"))
    assert [f.check for f in decision.failures] == [
        "restricted_symbol", "max_order_quantity", "max_order_notional", "price_collar", "max_position"]
    assert decision.checks_run == 9
