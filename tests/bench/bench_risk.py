"""Risk benchmark: ns per check and per intent through the pure core, the path the risk processor runs.

It runs every check the limits switch on (14 here: all of them), with the reference price known,
positions in two other symbols (so exposure and margin walk the account) and intents that pass.
"""

from __future__ import annotations

import gc
import time
from decimal import Decimal

import msgspec

from events import BookTop, ChildOrder, ExecutionReport, OrderIntent
from processors.risk import RiskState, parse_limits
from tests.bench.harness import BenchResult, result
from tests.cores import risk_step as step

T0 = 1_700_000_000_000_000_000
LIMITS = {
    "defaults": {"max_order_quantity": "10", "max_order_notional": "1000000", "price_collar_bps": 500,
                 "max_position": "1000000", "max_gross_exposure": "1000000000", "max_net_exposure": "1000000000",
                 "margin_rate": "0.1", "capital": "1000000000", "max_orders_per_window": 1_000_000_000,
                 "max_open_orders": 1_000_000_000},
}


def _state() -> RiskState:
    state = RiskState(parse_limits(msgspec.json.encode(LIMITS)))
    for n, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        top = BookTop(id=f"top-{symbol}", ts=T0, venue="SIM", symbol=symbol, last_update_id=1,
                      bid_price=Decimal("99.9"), bid_size=Decimal(1), ask_price=Decimal("100.1"), ask_size=Decimal(1))
        step(state, top)
        if n:
            child = ChildOrder(id=f"c-{symbol}", ts=T0, order_id=f"o-{symbol}", child_id=f"k-{symbol}",
                               account="ACC1", venue="SIM", symbol=symbol, side="BUY", quantity=Decimal(2))
            filled = ExecutionReport(id=f"r-{symbol}", ts=T0, order_id=f"o-{symbol}", child_id=f"k-{symbol}",
                                     account="ACC1", venue="SIM", symbol=symbol, side="BUY", status="FILLED",
                                     last_quantity=Decimal(2), last_price=Decimal(100), cum_quantity=Decimal(2))
            step(state, child)
            step(state, filled)
    return state


def _intents(count: int, tag: str) -> list[OrderIntent]:
    return [OrderIntent(id=f"{tag}-{i:09d}", ts=T0 + 1000 + i, account="ACC1", client_order_id=f"{tag}-{i}",
                        symbol="BTCUSDT", side="BUY" if i % 2 else "SELL", quantity=Decimal("0.001"),
                        limit_price=Decimal("100.05")) for i in range(count)]


def _single_ns_per_intent(count: int, repeats: int) -> tuple[float, int]:
    best = float("inf")
    checks = 0
    for r in range(repeats):
        state = _state()
        intents = _intents(count, f"s{r}")
        gc.collect()
        gc.disable()
        start = time.perf_counter_ns()
        for intent in intents:
            state, outputs = step(state, intent)
        elapsed = time.perf_counter_ns() - start
        gc.enable()
        decision = outputs[0]
        assert decision.accepted, decision.failures  # type: ignore[attr-defined]
        checks = decision.checks_run  # type: ignore[attr-defined]
        best = min(best, elapsed / count)
    return best, checks


def _baseline_ns(count: int, repeats: int) -> float:
    """A minimal plain-Python single-limit check on a Decimal quantity: the floor any real check sits on."""
    limit = Decimal("10")

    def check(quantity: Decimal) -> str | None:
        return None if quantity <= limit else f"quantity {quantity} over limit {limit}"

    quantities = [Decimal("0.001")] * count
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for quantity in quantities:
            check(quantity)
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def run(single_count: int = 20_000, repeats: int = 3) -> list[BenchResult]:
    """risk_single and risk_single_intent, each beside a baseline measured in this run."""
    per_intent, checks = _single_ns_per_intent(single_count, repeats)
    per_check = per_intent / checks
    baseline = _baseline_ns(single_count * 5, repeats)
    return [
        result("risk_single", per_check, "ns/check", better="lower", baseline_value=baseline,
               baseline=f"plain-Python single-limit Decimal check (one call, one comparison) in this run; "
                        f"core: decide+evolve of one intent with {checks} checks, RiskDecision and its id"),
        result("risk_single_intent", per_intent, "ns/intent", better="lower", baseline_value=baseline * checks,
               baseline=f"the plain-Python single-limit check above, {checks:.0f} times (one per check) in this "
                        f"run; the issue's target is 5,000 ns"),
    ]


if __name__ == "__main__":
    import json

    from tests.bench.harness import machine

    print(json.dumps({"machine": machine(), "results": [r.as_dict() for r in run()]}, indent=2))
