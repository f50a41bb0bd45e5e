"""The numpy batch path gives the core's verdicts, including for intents that sit exactly on a limit."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import CircuitBreakerTripped, KillSwitchEngaged, TradingStateChanged
from processors.risk import decide
from processors.risk.batch import check_batch
from tests.risk.factories import SECOND, T0, book_top, fill, intent, run, state_with

ACCOUNTS = ("ACC1", "ACC2")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
amounts = st.sampled_from(["0.1", "0.3", "1", "2", "2.5", "3", "10"])
prices = st.sampled_from(["90", "99", "99.5", "100", "100.1", "101", "110"])


def maybe(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), values)


limit_sets = st.fixed_dictionaries({}, optional={
    "max_order_quantity": st.sampled_from(["1", "2", "2.5"]),
    "max_order_notional": st.sampled_from(["100", "250", "300.3"]),
    "price_collar_bps": st.sampled_from([50, 100, 1000]),
    "max_position": st.sampled_from(["2", "3", "5"]),
    "max_gross_exposure": st.sampled_from(["300", "500", "600"]),
    "max_net_exposure": st.sampled_from(["200", "300"]),
    "max_orders_per_window": st.sampled_from([1, 2, 3]),
    "max_open_orders": st.sampled_from([1, 2, 4]),
})
accounts_limits = st.fixed_dictionaries({}, optional={
    "capital": st.sampled_from(["50", "100", "300"]),
    "margin_rate": st.sampled_from(["0.1", "0.5"]),
})
intents = st.builds(
    lambda account, symbol, side, quantity, price, coid, dt: intent(
        account=account, symbol=symbol, side=side, quantity=quantity, limit_price=price,
        ts=T0 + dt, **({"client_order_id": coid} if coid else {})),
    st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.sampled_from(["BUY", "SELL"]), amounts,
    maybe(prices), maybe(st.sampled_from(["c1", "c2"])), st.integers(0, 2 * SECOND))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(defaults=limit_sets, acc1=accounts_limits, restricted=st.booleans(), priced=st.booleans(),
       fills=st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.sampled_from(["BUY", "SELL"]),
                                amounts, prices), max_size=4),
       history=st.lists(intents, max_size=5), batch=st.lists(intents, min_size=1, max_size=30),
       control=st.sampled_from(["none", "kill", "reducing", "halted", "breaker"]))
def test_batch_when_any_state_and_intents_then_verdicts_equal_core(
        defaults, acc1, restricted, priced, fills, history, batch, control) -> None:
    state = state_with(defaults, accounts={"ACC1": acc1},
                       symbols={"ETHUSDT": {"restricted": restricted}})
    if priced:
        run(state, book_top("99.9", "100.1"))
    run(state, book_top("49", "51", symbol="ETHUSDT"))
    for account, symbol, side, quantity, price in fills:
        fill(state, account, symbol, side, quantity, price)
    run(state, *history)
    if control == "kill":
        run(state, KillSwitchEngaged(id="k", ts=T0, account="ACC2", actor="t", reason="t"))
    elif control in ("reducing", "halted"):
        run(state, TradingStateChanged(id="s", ts=T0, account="ACC1", state=control.upper(), reason="t"))
    elif control == "breaker":
        run(state, CircuitBreakerTripped(id="b", ts=T0, symbol="BTCUSDT", cause="manual", detail="t",
                                         until_ts=T0 + SECOND))
    verdicts = check_batch(state, batch)
    for row, order in enumerate(batch):
        (decision,) = decide(state, order)
        assert bool(verdicts.accepted[row]) == decision.accepted, (row, decision.failures)
        assert verdicts.failed_checks(row) == [f.check for f in decision.failures]
        assert int(verdicts.checks_run[row]) == decision.checks_run


def test_batch_when_intent_exactly_on_float_unfriendly_limit_then_decided_exactly() -> None:
    state = state_with({"max_order_notional": "0.3"})
    on_limit = intent(quantity="3", limit_price="0.1")          # 0.1 * 3 > 0.3 in float64
    over = intent(quantity="3.0000001", limit_price="0.1")
    verdicts = check_batch(state, [on_limit, over])
    assert list(verdicts.accepted) == [True, False]
    assert verdicts.exact_rows >= 1
    assert Decimal("0.1") * 3 == Decimal("0.3") and 0.1 * 3 > 0.3
