"""Rebalancing: targets, positions and prices become a proposal and ordinary, deterministic order intents."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from events.ids import derived_id, intent_id_for
from events.portfolio import RebalanceProposed, TargetWeightsSet
from events.trading import OrderIntent
from processors.portfolio.rebalance import RebalanceConfig, RebalanceRefused, current_weights, rebalance
from processors.portfolio.reconcile import reconcile

T0 = 1_700_000_000_000_000_000
PRICES = {"AAA": D("100"), "BBB": D("50"), "CCC": D("20")}


def targets(weights: dict[str, float], event_id: str = "tw-1") -> TargetWeightsSet:
    """A target-weights event for account ACC1."""
    return TargetWeightsSet(id=event_id, ts=T0, account="ACC1", weights=weights, method="min-variance")


def test_rebalance_when_weights_drift_then_intents_restore_targets_within_one_lot():
    positions = {"AAA": D("60"), "BBB": D("40")}   # 6000 + 2000 of 10000 equity: 60% / 20%
    config = RebalanceConfig(drift_threshold=0.02, lot_size={"AAA": D("1"), "BBB": D("1"), "CCC": D("1")})
    out = rebalance(targets({"AAA": 0.4, "BBB": 0.3, "CCC": 0.3}), positions, PRICES, D("2000"), config)
    proposal, intents = out[0], out[1:]
    assert isinstance(proposal, RebalanceProposed)
    assert proposal.trades == {"AAA": D("-20"), "BBB": D("20"), "CCC": D("150")}
    assert [(i.symbol, i.side, i.quantity) for i in intents] == [
        ("AAA", "SELL", D("20")), ("BBB", "BUY", D("20")), ("CCC", "BUY", D("150"))]
    held = {s: positions.get(s, D(0)) + proposal.trades.get(s, D(0)) for s in PRICES}
    weights = current_weights(held, PRICES, D("10000"))
    assert weights == pytest.approx({"AAA": 0.4, "BBB": 0.3, "CCC": 0.3}, abs=0.02)
    assert all(isinstance(i, OrderIntent) and i.strategy == "rebalance" and i.limit_price is None for i in intents)


def test_rebalance_when_same_target_redelivered_then_outputs_are_byte_identical_with_derived_ids():
    config = RebalanceConfig(drift_threshold=0.0)
    first = rebalance(targets({"AAA": 0.5, "BBB": 0.5}), {}, PRICES, D("10000"), config)
    again = rebalance(targets({"AAA": 0.5, "BBB": 0.5}), {}, PRICES, D("10000"), config)
    assert [msgspec.json.encode(e) for e in first] == [msgspec.json.encode(e) for e in again]
    proposal = first[0]
    assert proposal.id == derived_id("tw-1", "rebalance")
    for intent in first[1:]:
        assert intent.client_order_id == "rb-" + derived_id(proposal.id, f"rebalance-order:{intent.symbol}")
        assert intent.id == intent_id_for("ACC1", intent.client_order_id)
        assert intent.causation_id == proposal.id and intent.correlation_id == "tw-1"
    assert proposal.intent_ids == [i.id for i in first[1:]]
    other = rebalance(targets({"AAA": 0.5, "BBB": 0.5}, "tw-2"), {}, PRICES, D("10000"), config)
    assert {i.id for i in other[1:]}.isdisjoint({i.id for i in first[1:]})


def test_rebalance_when_drift_within_threshold_or_trade_too_small_then_no_intent():
    positions = {"AAA": D("50"), "BBB": D("99")}   # 50% and 49.5% of 10000
    config = RebalanceConfig(drift_threshold=0.01, min_trade_notional=D("100"), default_lot_size=D("1"))
    out = rebalance(targets({"AAA": 0.5, "BBB": 0.5}), positions, PRICES, D("50"), config)
    assert out[0].trades == {} and len(out) == 1
    # Past the threshold but under the minimum notional: 2 BBB = 100 is at the minimum, 1 is not.
    config = RebalanceConfig(drift_threshold=0.001, min_trade_notional=D("60"), default_lot_size=D("1"))
    out = rebalance(targets({"AAA": 0.5, "BBB": 0.5}), positions, PRICES, D("50"), config)
    assert out[0].trades == {}


def test_rebalance_when_symbol_held_but_not_targeted_then_sold_out():
    out = rebalance(targets({"AAA": 1.0}), {"AAA": D("50"), "CCC": D("250")}, PRICES, D("0"),
                    RebalanceConfig(default_lot_size=D("1")))
    assert out[0].trades == {"AAA": D("50"), "CCC": D("-250")}
    assert [(i.symbol, i.side) for i in out[1:]] == [("CCC", "SELL"), ("AAA", "BUY")]


def test_rebalance_when_price_missing_then_refused_naming_the_symbol():
    with pytest.raises(RebalanceRefused) as caught:
        rebalance(targets({"ZZZ": 1.0}), {}, PRICES, D("1000"), RebalanceConfig())
    assert caught.value.field == "prices.ZZZ"
    assert RebalanceConfig(drift_threshold=1.5, lot_size={"AAA": D("0")}).validate() == [
        "drift_threshold 1.5 must be in [0, 1)", "lot_size.AAA 0 must be above 0"]


def test_reconcile_when_quantities_differ_then_one_break_per_symbol_with_derived_ids():
    ours = {"AAA": D("10"), "BBB": D("5"), "CCC": D("0")}
    venue = {"AAA": D("10"), "BBB": D("4"), "DDD": D("1")}
    breaks = reconcile("ACC1", "SIM", ours, venue, cause_id="vp-1", ts=T0)
    assert [(b.symbol, b.ours, b.venue_reported) for b in breaks] == [("BBB", D("5"), D("4")), ("DDD", D(0), D("1"))]
    assert breaks[0].id == derived_id("vp-1", "break:BBB") and breaks[0].causation_id == "vp-1"
    assert reconcile("ACC1", "SIM", ours, venue, cause_id="vp-1", ts=T0, tolerance=D("1")) == []
