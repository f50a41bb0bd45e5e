"""The risk runner's live metrics: decisions by outcome and check, and the kill-switch gauge."""

from __future__ import annotations

from prometheus_client import REGISTRY

from events import CheckFailure, RiskDecision
from events.control import KillSwitchEngaged
from processors.risk import RiskState
from processors.risk.runner import observe


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_observe_counts_rejections_by_first_failed_check_and_mirrors_the_kill_switch() -> None:
    state = RiskState()
    before = _value("sq_risk_decisions_total", {"accepted": "false", "check": "max_order_notional"})
    rejected = RiskDecision(id="d1", ts=1, order_id="o1", account="ACC1", symbol="XYZ", accepted=False,
                            failures=[CheckFailure(check="max_order_notional", reason="too big")])
    observe(state, [], [rejected])
    assert _value("sq_risk_decisions_total", {"accepted": "false", "check": "max_order_notional"}) == before + 1
    assert _value("sq_risk_kill_switch_engaged", {"account": "all"}) == 0
    # What evolve makes of two kill-switch events; the batch that carried them names the accounts to update.
    engaged = [KillSwitchEngaged(id="k1", ts=2, actor="ops", reason="test"),
               KillSwitchEngaged(id="k2", ts=2, account="ACC1", actor="ops", reason="test")]
    state.global_kill = True
    state.account("ACC1").killed = True
    observe(state, engaged, [])
    assert _value("sq_risk_kill_switch_engaged", {"account": "all"}) == 1
    assert _value("sq_risk_kill_switch_engaged", {"account": "ACC1"}) == 1
