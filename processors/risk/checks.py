"""The pre-trade checks: each a small function of one intent's context returning CheckFailure or None.

Arithmetic here uses Decimal operators (28 significant digits) rather than the trapping EXACT
context of the books: it is 5-7x faster, and a comparison could only change where a value and its
limit agree to 28 significant digits. Positions and P&L themselves are kept exactly (processors.positions).

Every limit is compared as "value over limit fails": an intent exactly at a limit passes.
Projections are worst case in the intent's direction: position + unfilled open parents on the
same side + this intent, for the intent's symbol; other symbols count at their current position.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from events.trading import CheckFailure, OrderIntent
from processors.positions._position import ZERO
from processors.risk.config import EffectiveLimits
from processors.risk.state import AccountRisk, RiskState


def _f(value: Decimal | int) -> str:
    """A number as plain text (never 1E+3)."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _seconds(ns: int) -> str:
    """A window in ns as seconds text: 1, 0.5, 60."""
    return _f((Decimal(ns) / 1_000_000_000).normalize())


class Ctx:
    """What the checks need about one intent, computed once."""

    __slots__ = ("state", "intent", "limits", "account", "ref", "price", "notional",
                 "held", "open_same", "projected", "_exposures")

    def __init__(self, state: RiskState, intent: OrderIntent, limits: EffectiveLimits) -> None:
        self.state = state
        self.intent = intent
        self.limits = limits
        self.account: AccountRisk | None = state.accounts.get(intent.account)
        market = state.markets.get(intent.symbol)
        self.ref = market.ref if market is not None else None
        # Market orders are valued at the reference price (ARCHITECTURE.md, "risk").
        self.price = intent.limit_price if intent.limit_price is not None else self.ref
        self.notional = None if self.price is None else intent.quantity * self.price
        key = (intent.account, intent.symbol)
        book = state.book
        found = book.positions.get(key)
        self.held = found.quantity if found is not None else ZERO
        if intent.side == "BUY":
            self.open_same = book.open_buy.get(key, ZERO)
            self.projected = self.held + self.open_same + intent.quantity
        else:
            self.open_same = book.open_sell.get(key, ZERO)
            self.projected = self.held - self.open_same - intent.quantity
        self._exposures: tuple[Decimal, Decimal, Decimal] | None | bool = False

    @property
    def where(self) -> str:
        return f"{self.intent.account}/{self.intent.symbol}"

    def fail(self, check: str, reason: str, value: Decimal | int | str | None = None,
             limit: Decimal | int | str | None = None) -> CheckFailure:
        return CheckFailure(check=check, reason=reason,
                            value=None if value is None else _f(value) if not isinstance(value, str) else value,
                            limit=None if limit is None else _f(limit) if not isinstance(limit, str) else limit)

    def no_price(self, check: str) -> CheckFailure:
        return self.fail(check, f"market order for {self.where} has no reference price (no mid or last trade) "
                                "to value it")


Check = Callable[[Ctx], CheckFailure | None]


def kill_switch(c: Ctx) -> CheckFailure | None:
    if c.state.global_kill:
        return c.fail("kill_switch", f"global kill switch engaged; {c.where} refused")
    if c.account is not None and c.account.killed:
        return c.fail("kill_switch", f"kill switch engaged for {c.intent.account}; {c.where} refused")
    return None


def trading_state(c: Ctx) -> CheckFailure | None:
    if c.state.global_state == "ACTIVE" and (c.account is None or c.account.state == "ACTIVE"):
        return None
    state = c.state.trading_state(c.intent.account)
    if state == "HALTED":
        return c.fail("trading_state", f"trading state HALTED for {c.intent.account}", "HALTED")
    held = c.held
    reduces = held != 0 and (held > 0) == (c.intent.side == "SELL") and \
        c.open_same + c.intent.quantity <= abs(held)
    if reduces:
        return None
    return c.fail("trading_state",
                  f"trading state REDUCING for {c.intent.account}: {c.intent.side} {_f(c.intent.quantity)} "
                  f"(with {_f(c.open_same)} open on that side) does not reduce position {_f(held)} in "
                  f"{c.intent.symbol}", "REDUCING")


def circuit_breaker(c: Ctx) -> CheckFailure | None:
    halt = c.state.halts.get(c.intent.symbol)
    if halt is None or not halt.active(c.intent.ts):
        return None
    until = "until reset" if halt.until_ts is None else f"until ts {halt.until_ts}"
    return c.fail("circuit_breaker", f"circuit breaker ({halt.cause}) halts {c.intent.symbol} {until}")


def restricted_symbol(c: Ctx) -> CheckFailure | None:
    if c.limits.restricted:
        return c.fail("restricted_symbol", f"symbol {c.intent.symbol} is restricted for {c.intent.account}")
    return None


def duplicate_client_order_id(c: Ctx) -> CheckFailure | None:
    own = c.account
    used = own.coid_used_at(c.intent) if own is not None else None
    if own is None or used is None:
        return None
    return c.fail("duplicate_client_order_id",
                  f"client_order_id {c.intent.client_order_id} already used for {c.intent.account} "
                  f"{_seconds(c.intent.ts - used)} s earlier, within the {_seconds(own.coids.window_ns)} s "
                  f"dedupe window", c.intent.client_order_id)


def max_order_quantity(c: Ctx) -> CheckFailure | None:
    limit = c.limits.max_order_quantity
    if limit is None or c.intent.quantity <= limit:
        return None
    return c.fail("max_order_quantity",
                  f"quantity {_f(c.intent.quantity)} over limit {_f(limit)} for {c.where}", c.intent.quantity, limit)


def max_order_notional(c: Ctx) -> CheckFailure | None:
    limit = c.limits.max_order_notional
    if limit is None:
        return None
    if c.notional is None:
        return c.no_price("max_order_notional")
    if c.notional <= limit:
        return None
    return c.fail("max_order_notional", f"notional {_f(c.notional)} over limit {_f(limit)} for {c.where}",
                  c.notional, limit)


def price_collar(c: Ctx) -> CheckFailure | None:
    collar = c.limits.price_collar
    price = c.intent.limit_price
    if collar is None or price is None:
        return None
    ref = c.ref
    if ref is None:
        return c.fail("price_collar", f"no reference price (mid or last trade) to collar limit price "
                                      f"{_f(price)} against for {c.where}", price)
    distance = abs(price - ref)
    if distance <= ref * collar:
        return None
    bps = (collar * 10_000).normalize()
    return c.fail("price_collar",
                  f"limit price {_f(price)} is {_f(round(distance / ref * 10_000, 2))} bps from reference "
                  f"{_f(ref)}, over collar {_f(bps)} bps for {c.where}", price, bps)


def max_position(c: Ctx) -> CheckFailure | None:
    limit = c.limits.max_position
    if limit is None or abs(c.projected) <= limit:
        return None
    return c.fail("max_position",
                  f"projected position {_f(c.projected)} over limit {_f(limit)} for {c.where} "
                  f"(position {_f(c.held)}, open {c.intent.side} {_f(c.open_same)}, "
                  f"order {_f(c.intent.quantity)})", c.projected, limit)


def exposures(c: Ctx) -> tuple[Decimal, Decimal, Decimal] | None:
    """Projected gross and net exposure and margin required of the intent's account, or None without a price."""
    if c._exposures is not False:
        return c._exposures  # type: ignore[return-value]
    c._exposures = found = _exposures(c)
    return found


def _exposures(c: Ctx) -> tuple[Decimal, Decimal, Decimal] | None:
    if c.price is None:
        return None
    symbol_value = c.projected * c.price
    rate = c.limits.margin_rate
    gross, net, margin = _exposures_elsewhere(c.state, c.intent.account, c.intent.symbol)
    gross += abs(symbol_value)
    net += symbol_value
    if rate:
        margin += abs(symbol_value) * rate
    return gross, abs(net), margin


def _exposures_elsewhere(state: RiskState, account: str, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
    """Gross and net value and margin of the account's positions in every symbol but `symbol`."""
    gross = net = margin = ZERO
    own = state.accounts.get(account)
    if own is None:
        return gross, net, margin
    for other in own.symbols:
        if other == symbol:
            continue
        position = state.book.positions.get((account, other))
        if position is None or not position.quantity:
            continue
        value = state.value(position)
        gross += abs(value)
        net += value
        other_rate = state.limits_for(account, other).margin_rate
        if other_rate:
            margin += abs(value) * other_rate
    return gross, net, margin


# Indexes into what exposures() returns.
GROSS, NET, MARGIN = 0, 1, 2


def _exposure_check(c: Ctx, check: str, index: int, measure: str, bound: str, limit: Decimal) -> CheckFailure | None:
    """Fail `check` when the account's projected exposures()[index] is over `limit` (the `bound`, in the reason)."""
    found = exposures(c)
    if found is None:
        return c.no_price(check)
    value = found[index]
    if value <= limit:
        return None
    return c.fail(check, f"{measure} {_f(value)} over {bound} {_f(limit)} for {c.intent.account} (order {c.where})",
                  value, limit)


def max_gross_exposure(c: Ctx) -> CheckFailure | None:
    """The account's projected gross exposure against max_gross_exposure."""
    limit = c.limits.max_gross_exposure
    assert limit is not None
    return _exposure_check(c, "max_gross_exposure", GROSS, "projected gross exposure", "limit", limit)


def max_net_exposure(c: Ctx) -> CheckFailure | None:
    """The account's projected net exposure against max_net_exposure."""
    limit = c.limits.max_net_exposure
    assert limit is not None
    return _exposure_check(c, "max_net_exposure", NET, "projected net exposure", "limit", limit)


def margin(c: Ctx) -> CheckFailure | None:
    """The account's projected margin required against its equity (capital plus P&L)."""
    capital = c.limits.capital
    assert capital is not None
    equity = capital + c.state.pnl(c.intent.account)
    return _exposure_check(c, "margin", MARGIN, "margin required", "equity", equity)


def order_rate(c: Ctx) -> CheckFailure | None:
    limit = c.limits.max_orders_per_window
    assert limit is not None
    window = c.limits.order_window_ns
    recent = c.account.orders_since(c.intent.ts - window) if c.account is not None else 0
    if recent + 1 <= limit:
        return None
    return c.fail("order_rate", f"order rate {recent + 1} in {_seconds(window)} s over limit {limit} for "
                                f"{c.intent.account}", recent + 1, limit)


def max_open_orders(c: Ctx) -> CheckFailure | None:
    limit = c.limits.max_open_orders
    assert limit is not None
    opened = c.state.book.open_orders(c.intent.account)
    if opened + 1 <= limit:
        return None
    return c.fail("max_open_orders", f"open orders {opened + 1} with this one over limit {limit} for "
                                     f"{c.intent.account}", opened + 1, limit)


ALWAYS: tuple[Check, ...] = (kill_switch, trading_state, circuit_breaker, restricted_symbol,
                             duplicate_client_order_id)
# (limit that switches the check on, check)
OPTIONAL: tuple[tuple[str, Check], ...] = (
    ("max_order_quantity", max_order_quantity),
    ("max_order_notional", max_order_notional),
    ("price_collar", price_collar),
    ("max_position", max_position),
    ("max_gross_exposure", max_gross_exposure),
    ("max_net_exposure", max_net_exposure),
    ("capital", margin),          # margin needs capital; the rate defaults to 0 where unset
    ("max_orders_per_window", order_rate),
    ("max_open_orders", max_open_orders),
)
CHECK_NAMES: tuple[str, ...] = tuple(f.__name__ for f in ALWAYS) + tuple(f.__name__ for _, f in OPTIONAL)


def enabled_checks(limits: EffectiveLimits) -> tuple[Check, ...]:
    """The checks these limits switch on, in a fixed order (a check with no limit costs nothing)."""
    on = [f for name, f in OPTIONAL if getattr(limits, name) is not None]
    if limits.margin_rate is None and margin in on:
        on.remove(margin)
    return ALWAYS + tuple(on)
