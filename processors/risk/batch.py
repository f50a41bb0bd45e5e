"""Check many intents at once with numpy, for replay screening, what-if limits and backtests.

Semantics: every intent is checked against the same state snapshot, as if it were the next intent
the core saw — `check_batch(state, intents)[i]` gives the verdict `decide(state, intents[i])` gives
(tests/risk/test_batch.py checks this on random inputs). Intents do not see each other: to run a
sequence where each accepted intent moves positions, rates and open orders, step the core.

Exactness: the comparisons run in float64. Each input is a decimal of at most ~16 significant
digits in practice, so converting and combining a handful of them errs by far less than 1e-12 of
the magnitudes involved. A row whose value lies within a guard band of 1e-9 of the magnitudes of
any of its limits is ambiguous in float64 and is re-decided exactly by the core, so verdicts never
differ; far from every limit, float64 cannot flip a comparison. Counts and times are exact int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from events.trading import OrderIntent
from processors.positions._position import ZERO
from processors.risk.checks import CHECK_NAMES, exposures_parts
from processors.risk.core import decide_intent
from processors.risk.state import RiskState

BIT = {name: 1 << index for index, name in enumerate(CHECK_NAMES)}
GUARD = 1e-9
_STATE_CODE = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}
_NAN = float("nan")
_INF = float("inf")


@dataclass(frozen=True)
class BatchVerdicts:
    """Per intent: accepted, a bitmask of failed checks (bit i is CHECK_NAMES[i]) and checks run."""

    accepted: np.ndarray
    failed: np.ndarray
    checks_run: np.ndarray
    exact_rows: int          # rows re-decided by the core because they sat on a limit

    def failed_checks(self, row: int) -> list[str]:
        """Names of the checks row `row` failed, in check order."""
        mask = int(self.failed[row])
        return [name for name, bit in BIT.items() if mask & bit]


def _f(value: Decimal | int | None, missing: float) -> float:
    return missing if value is None else float(value)


class _Pair:
    """Everything about one (account, symbol) that does not depend on the intent."""

    __slots__ = ("row",)

    def __init__(self, state: RiskState, account: str, symbol: str) -> None:
        limits, checks = state.compiled_for(account, symbol)
        own = state.accounts.get(account)
        book = state.book
        key = (account, symbol)
        position = book.positions.get(key)
        halt = state.halts.get(symbol)
        gross_o, net_o, margin_o = exposures_parts(state, account, symbol)
        equity = (limits.capital + state.pnl(account)) if limits.capital is not None else None
        enabled = 0
        for check in checks:
            enabled |= BIT[check.__name__]
        self.row = (
            enabled, len(checks),
            float(state.global_kill or (own is not None and own.killed)),
            _STATE_CODE[state.trading_state(account)],
            -1 if halt is None else (2**62 if halt.until_ts is None else halt.until_ts),
            float(limits.restricted),
            _f(limits.max_order_quantity, _INF), _f(limits.max_order_notional, _INF),
            _f(limits.price_collar, _NAN), _f(limits.max_position, _INF),
            _f(limits.max_gross_exposure, _INF), _f(limits.max_net_exposure, _INF),
            _f(limits.margin_rate, 0.0), _f(equity, _INF),
            _f(state.reference(symbol), _NAN),
            _f(position.quantity if position is not None else ZERO, 0.0),
            _f(book.open_buy.get(key, ZERO), 0.0), _f(book.open_sell.get(key, ZERO), 0.0),
            float(gross_o), float(net_o), float(margin_o),
            limits.max_orders_per_window if limits.max_orders_per_window is not None else 2**62,
            limits.order_window_ns, book.open_orders(account),
            limits.max_open_orders if limits.max_open_orders is not None else 2**62,
        )


_COLUMNS = ("enabled", "nchecks", "killed", "state", "halt_until", "restricted", "max_qty", "max_notional",
            "collar", "max_pos", "max_gross", "max_net", "margin_rate", "equity", "ref", "held", "open_buy",
            "open_sell", "gross_o", "net_o", "margin_o", "max_rate", "window", "opened", "max_open")
_INT_COLUMNS = frozenset({"enabled", "nchecks", "state", "halt_until", "max_rate", "window", "opened", "max_open"})


def check_batch(state: RiskState, intents: Sequence[OrderIntent]) -> BatchVerdicts:
    """Verdicts for every intent against the current state (see the module docstring)."""
    n = len(intents)
    pair_index: dict[tuple[str, str], int] = {}
    pairs: list[tuple[Any, ...]] = []
    pair_of = np.empty(n, np.int64)
    qty = np.empty(n, np.float64)
    price = np.empty(n, np.float64)
    buy = np.empty(n, np.bool_)
    ts = np.empty(n, np.int64)
    duplicate = np.zeros(n, np.bool_)
    recent = np.zeros(n, np.int64)
    for i, intent in enumerate(intents):
        key = (intent.account, intent.symbol)
        p = pair_index.get(key)
        if p is None:
            p = pair_index[key] = len(pairs)
            pairs.append(_Pair(state, *key).row)
        pair_of[i] = p
        qty[i] = float(intent.quantity)
        price[i] = _NAN if intent.limit_price is None else float(intent.limit_price)
        buy[i] = intent.side == "BUY"
        ts[i] = intent.ts
        own = state.accounts.get(intent.account)
        if own is not None:
            duplicate[i] = own.coid_used_at(intent) is not None
            if own.order_times:
                recent[i] = own.orders_since(intent.ts - pairs[p][22])
    table: dict[str, Any] = {name: np.array([row[j] for row in pairs], np.int64 if name in _INT_COLUMNS else np.float64)[pair_of]
             for j, name in enumerate(_COLUMNS)}
    t = table
    has_limit = ~np.isnan(price)
    value_price = np.where(has_limit, price, t["ref"])
    priced = ~np.isnan(value_price)
    sign = np.where(buy, 1.0, -1.0)
    open_same = np.where(buy, t["open_buy"], t["open_sell"])
    held = t["held"]
    projected = held + sign * (open_same + qty)
    failed = np.zeros(n, np.int64)
    ambiguous = np.zeros(n, np.bool_)

    def over(value: np.ndarray, limit: np.ndarray, bit: int, valid: np.ndarray | None = None) -> None:
        nonlocal failed, ambiguous
        near = np.abs(value - limit) <= GUARD * (np.abs(value) + np.abs(limit))
        hit = value > limit
        if valid is not None:
            hit &= valid
            near &= valid
        failed |= np.where(hit, bit, 0)
        ambiguous |= near & ((t["enabled"] & bit) != 0)

    failed |= np.where(t["killed"] > 0, BIT["kill_switch"], 0)
    reduces = (held != 0) & ((held > 0) != buy)
    over(open_same + qty, np.abs(held), 0, reduces & (t["state"] == 1))          # only marks ambiguity
    reduces &= open_same + qty <= np.abs(held)
    failed |= np.where((t["state"] == 2) | ((t["state"] == 1) & ~reduces), BIT["trading_state"], 0)
    ambiguous |= (t["state"] == 1) & reduces & (np.abs(open_same + qty - np.abs(held))
                                                <= GUARD * (np.abs(held) + qty))
    failed |= np.where((t["halt_until"] >= 0) & (ts < t["halt_until"]), BIT["circuit_breaker"], 0)
    failed |= np.where(t["restricted"] > 0, BIT["restricted_symbol"], 0)
    failed |= np.where(duplicate, BIT["duplicate_client_order_id"], 0)
    over(qty, t["max_qty"], BIT["max_order_quantity"])
    notional = qty * value_price
    failed |= np.where(~priced, BIT["max_order_notional"] | BIT["max_gross_exposure"]
                       | BIT["max_net_exposure"] | BIT["margin"], 0)
    over(notional, t["max_notional"], BIT["max_order_notional"], priced)
    ref = t["ref"]
    collared = has_limit & ~np.isnan(t["collar"])
    failed |= np.where(collared & np.isnan(ref), BIT["price_collar"], 0)
    with np.errstate(invalid="ignore"):
        over(np.abs(price - ref), ref * t["collar"], BIT["price_collar"], collared & ~np.isnan(ref))
    over(np.abs(projected), t["max_pos"], BIT["max_position"])
    symbol_value = projected * value_price
    over(t["gross_o"] + np.abs(symbol_value), t["max_gross"], BIT["max_gross_exposure"], priced)
    over(np.abs(t["net_o"] + symbol_value), t["max_net"], BIT["max_net_exposure"], priced)
    over(t["margin_o"] + np.abs(symbol_value) * t["margin_rate"], t["equity"], BIT["margin"], priced)
    failed |= np.where(recent + 1 > t["max_rate"], BIT["order_rate"], 0)
    failed |= np.where(t["opened"] + 1 > t["max_open"], BIT["max_open_orders"], 0)
    failed &= t["enabled"]
    rows = np.flatnonzero(ambiguous)
    for row in rows:
        exact = decide_intent(state, intents[int(row)])
        mask = 0
        for failure in exact.failures:
            mask |= BIT[failure.check]
        failed[row] = mask
    return BatchVerdicts(accepted=failed == 0, failed=failed, checks_run=t["nchecks"], exact_rows=len(rows))
