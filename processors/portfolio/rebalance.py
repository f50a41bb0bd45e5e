"""Rebalancing: target weights, current positions and prices in; a proposal and ordinary order intents out.

Pure: no clock (time is the target event's), no I/O. Every output id is derived from the target
event, so a redelivered target produces byte-identical outputs that the bus deduplicates:
the proposal is `derived_id(target.id, "rebalance")`, each intent's client order id is
`rb-` + `derived_id(proposal.id, "rebalance-order:" + symbol)` and its id `intent_id_for(account,
client_order_id)`, the same id the intake would give an intent published without one.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec

from events._base import Event
from events.ids import derived_id, intent_id_for
from events.portfolio import RebalanceProposed, TargetWeightsSet
from events.trading import OrderIntent
from processors.positions import EXACT

ZERO = Decimal(0)
# Float weights become exact decimals at this precision: finer than any lot, coarser than float noise.
WEIGHT_QUANTUM = Decimal("1e-12")


class RebalanceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How targets become trades: drift threshold, minimum trade, lot sizes and the strategy tag."""

    drift_threshold: float = 0.01
    min_trade_notional: Decimal = Decimal(0)
    lot_size: dict[str, Decimal] = {}
    default_lot_size: Decimal = Decimal("0.00000001")
    strategy: str = "rebalance"

    def validate(self) -> list[str]:
        """Every bad field at once, each naming the value and the limit."""
        problems = []
        if not 0 <= self.drift_threshold < 1:
            problems.append(f"drift_threshold {self.drift_threshold} must be in [0, 1)")
        if self.min_trade_notional < 0:
            problems.append(f"min_trade_notional {self.min_trade_notional} must not be negative")
        for symbol, lot in {**self.lot_size, "default_lot_size": self.default_lot_size}.items():
            if lot <= 0:
                problems.append(f"lot_size.{symbol} {lot} must be above 0")
        return problems


class RebalanceRefused(ValueError):
    """A rebalance cannot be computed; `field`, `value` and `limit` say why."""

    def __init__(self, field: str, value: object, limit: str) -> None:
        super().__init__(f"{field} {value} {limit}")
        self.field = field
        self.value = value
        self.limit = limit


def current_weights(positions: dict[str, Decimal], prices: dict[str, Decimal], equity: Decimal) -> dict[str, float]:
    """Each held symbol's market value as a fraction of equity."""
    return {s: float(EXACT.divide(EXACT.multiply(q, prices[s]), equity) if equity else ZERO)
            for s, q in positions.items() if q}


def plan_trades(weights: dict[str, float], positions: dict[str, Decimal], prices: dict[str, Decimal],
                equity: Decimal, config: RebalanceConfig) -> dict[str, Decimal]:
    """Signed quantities per symbol that move drifted weights to target, in whole lots, above the minimum trade.

    A symbol held but absent from the targets has target 0: the targets describe the whole book.
    """
    if equity <= 0:
        raise RebalanceRefused("equity", equity, "must be above 0 to size a rebalance")
    trades: dict[str, Decimal] = {}
    for symbol in sorted(set(weights) | {s for s, q in positions.items() if q}):
        price = prices.get(symbol)
        if price is None or price <= 0:
            raise RebalanceRefused(f"prices.{symbol}", price, "must be a known price above 0")
        target = Decimal(repr(weights.get(symbol, 0.0))).quantize(WEIGHT_QUANTUM)
        held = positions.get(symbol, ZERO)
        value = EXACT.multiply(held, price)
        drift = abs(float(value / equity) - float(target))
        if drift <= config.drift_threshold:
            continue
        wanted = EXACT.divide(EXACT.multiply(target, equity), price) if target else ZERO
        lot = config.lot_size.get(symbol, config.default_lot_size)
        # Round the trade towards zero in whole lots: never buy more than the target allows.
        delta = ((wanted - held) / lot).to_integral_value(rounding=ROUND_DOWN) * lot
        if not delta or abs(delta) * price < config.min_trade_notional:
            continue
        trades[symbol] = delta
    return trades


def rebalance(target: TargetWeightsSet, positions: dict[str, Decimal], prices: dict[str, Decimal],
              cash: Decimal, config: RebalanceConfig) -> list[Event]:
    """The proposal and its order intents (sells first, so their proceeds fund the buys)."""
    equity = EXACT.add(cash, sum((EXACT.multiply(q, prices[s]) for s, q in positions.items()
                                  if q and s in prices), ZERO))
    missing = sorted(s for s, q in positions.items() if q and s not in prices)
    if missing:
        raise RebalanceRefused(f"prices.{missing[0]}", None, "must be a known price to value the book")
    trades = plan_trades(target.weights, positions, prices, equity, config)
    proposal_id = derived_id(target.id, "rebalance")
    intents: list[OrderIntent] = []
    for symbol, delta in sorted(trades.items(), key=lambda item: (item[1] > 0, item[0])):
        client_order_id = "rb-" + derived_id(proposal_id, f"rebalance-order:{symbol}")
        intents.append(OrderIntent(
            id=intent_id_for(target.account, client_order_id), ts=target.ts, account=target.account,
            client_order_id=client_order_id, symbol=symbol, side="BUY" if delta > 0 else "SELL",
            quantity=abs(delta), strategy=config.strategy, correlation_id=target.id, causation_id=proposal_id))
    proposal = RebalanceProposed(id=proposal_id, ts=target.ts, account=target.account, trades=trades,
                                 drift_threshold=config.drift_threshold, intent_ids=[i.id for i in intents],
                                 correlation_id=target.id, causation_id=target.id)
    return [proposal, *intents]
