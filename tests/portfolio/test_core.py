"""The portfolio core: marks and fills in, rebalance intents out, refusals dead-lettered with the reason."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from events.audit import DeadLetter
from events.market import BookTop, Trade
from events.portfolio import RebalanceProposed, ReconciliationBreak, TargetWeightsSet, VenuePositionsReported
from events.trading import ExecutionReport, OrderIntent, RiskDecision
from processors.fold import step
from processors.portfolio.core import PortfolioConfig, PortfolioState, decide, evolve
from processors.portfolio.rebalance import RebalanceConfig
from processors.portfolio.runner import InvalidPortfolioConfig, load_config

T0 = 1_700_000_000_000_000_000


def fold(state: PortfolioState, event: object) -> list:
    """Decide on the state before the event, then fold the event and the outputs (the host's step; the
    portfolio's state changes in place, so the caller's `state` is the one folded)."""
    _, outputs = step(decide, evolve, state, event, apply_outputs=True)
    return outputs


def fill_all(state: PortfolioState, intent: OrderIntent, price: str) -> None:
    """Accept the intent and fill it whole at `price` (what risk and the router would publish)."""
    fold(state, RiskDecision(id=f"d-{intent.id}", ts=T0, order_id=intent.id, account=intent.account,
                             symbol=intent.symbol, accepted=True))
    fold(state, ExecutionReport(id=f"x-{intent.id}", ts=T0, order_id=intent.id, child_id=f"c-{intent.id}",
                                account=intent.account, venue="SIM", symbol=intent.symbol, side=intent.side,
                                status="FILLED", last_quantity=intent.quantity, last_price=D(price),
                                cum_quantity=intent.quantity, fee=D("0.1")))


def test_targets_when_marks_known_then_intents_fill_to_weights_within_threshold():
    config = PortfolioConfig(capital={"ACC1": D("10000")},
                             rebalance=RebalanceConfig(drift_threshold=0.01, default_lot_size=D("0.001")))
    state = PortfolioState(config)
    fold(state, Trade(id="t1", ts=T0, venue="SIM", symbol="AAA", price=D("100"), quantity=D("1")))
    fold(state, BookTop(id="b1", ts=T0, venue="SIM", symbol="BBB", last_update_id=1, bid_price=D("49"),
                        bid_size=D(1), ask_price=D("51"), ask_size=D(1)))
    out = fold(state, TargetWeightsSet(id="tw1", ts=T0, account="ACC1", weights={"AAA": 0.6, "BBB": 0.4},
                                       method="max-sharpe"))
    assert isinstance(out[0], RebalanceProposed) and [type(e) for e in out[1:]] == [OrderIntent, OrderIntent]
    # The same targets again before anything fills: the intents in flight already cover them.
    in_flight = fold(state, TargetWeightsSet(id="tw0", ts=T0, account="ACC1", weights={"AAA": 0.6, "BBB": 0.4},
                                             method="max-sharpe"))
    assert in_flight[0].trades == {} and len(in_flight) == 1
    for intent in out[1:]:
        fill_all(state, intent, str(state.marks[intent.symbol]))
    equity = state.cash("ACC1") + sum(q * state.marks[s] for s, q in state.holdings("ACC1").items())
    weights = {s: float(q * state.marks[s] / equity) for s, q in state.holdings("ACC1").items()}
    assert weights == pytest.approx({"AAA": 0.6, "BBB": 0.4}, abs=0.01)
    rows = {r.key: r for r in state.attribution["ACC1"].by_strategy_rows(state.marks)}
    assert rows["rebalance"].fees == D("0.2") and rows["rebalance"].net_pnl == D("-0.2")
    # Already at target: a second identical request trades nothing.
    again = fold(state, TargetWeightsSet(id="tw2", ts=T0, account="ACC1", weights={"AAA": 0.6, "BBB": 0.4},
                                         method="max-sharpe"))
    assert again[0].trades == {} and len(again) == 1


def test_targets_when_a_mark_is_missing_then_dead_letter_names_the_symbol():
    state = PortfolioState(PortfolioConfig(capital={"ACC1": D("1000")}))
    out = decide(state, TargetWeightsSet(id="tw1", ts=T0, account="ACC1", weights={"ZZZ": 1.0}, method="equal"))
    assert len(out) == 1 and isinstance(out[0], DeadLetter)
    assert out[0].reason == "prices.ZZZ None must be a known price above 0" and out[0].causation_id == "tw1"


def test_config_when_fields_bad_then_every_problem_named(tmp_path):
    path = tmp_path / "pf.json"
    path.write_text(json.dumps({"capital": {"ACC1": "-5"}, "rebalance": {"drift_threshold": 2}}))
    with pytest.raises(InvalidPortfolioConfig) as caught:
        load_config(str(path))
    assert caught.value.problems == ["capital.ACC1 -5 must not be negative",
                                     "rebalance.drift_threshold 2.0 must be in [0, 1)"]
    path.write_text(json.dumps({"capitl": {}}))
    with pytest.raises(InvalidPortfolioConfig, match="capitl"):
        load_config(str(path))


def test_venue_positions_when_they_disagree_with_our_fills_then_a_break_per_symbol():
    state = PortfolioState(PortfolioConfig())
    for index, (symbol, side, quantity) in enumerate((("AAA", "BUY", "5"), ("AAA", "SELL", "2"), ("BBB", "BUY", "1"))):
        fold(state, ExecutionReport(id=f"r{index}", ts=T0, order_id="o", child_id=f"c{index}", account="ACC1",
                                    venue="SIM", symbol=symbol, side=side, status="FILLED",
                                    last_quantity=D(quantity), last_price=D("10"), cum_quantity=D(quantity)))
    # A redelivered report must not count twice.
    fold(state, ExecutionReport(id="r0", ts=T0, order_id="o", child_id="c0", account="ACC1", venue="SIM",
                                symbol="AAA", side="BUY", status="FILLED", last_quantity=D("5"),
                                last_price=D("10"), cum_quantity=D("5")))
    report = VenuePositionsReported(id="v1", ts=T0 + 1, account="ACC1", venue="SIM",
                                    positions={"AAA": D("3"), "BBB": D("2"), "CCC": D("1")})
    breaks = fold(state, report)
    assert [(b.symbol, b.ours, b.venue_reported) for b in breaks] == [("BBB", D("1"), D("2")), ("CCC", D("0"), D("1"))]
    assert all(isinstance(b, ReconciliationBreak) and b.venue == "SIM" for b in breaks)
    assert fold(state, VenuePositionsReported(id="v2", ts=T0 + 2, account="ACC1", venue="SIM",
                                              positions={"AAA": D("3"), "BBB": D("1")})) == []
