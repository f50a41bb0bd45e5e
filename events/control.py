"""Control events: kill switch, circuit breakers, trading state, limit changes and timers."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from events._base import Event, Token

TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]

# A limit's value in one layer: unset inherits from the layer above, null switches the check off.
Money = Decimal | None | UnsetType
Count = int | None | UnsetType
Seconds = Decimal | UnsetType


class KillSwitchEngaged(Event, frozen=True, kw_only=True):
    """New intents are refused and working children cancelled, for one account or (account None) all."""

    account: Token | None = None
    actor: str
    reason: str


class KillSwitchReleased(Event, frozen=True, kw_only=True):
    """Trading may resume for the account (or all accounts) the kill switch covered."""

    account: Token | None = None
    actor: str
    reason: str


class CircuitBreakerTripped(Event, frozen=True, kw_only=True):
    """A symbol is halted after a price move or an error burst beyond its threshold."""

    symbol: Token
    cause: Literal["price_move", "error_burst", "manual"]
    detail: str
    until_ts: int | None = None


class CircuitBreakerReset(Event, frozen=True, kw_only=True):
    """A halted symbol trades again."""

    symbol: Token
    actor: str


class TradingStateChanged(Event, frozen=True, kw_only=True):
    """An account (or, with account None, the whole system) moves to ACTIVE, REDUCING or HALTED."""

    account: Token | None = None
    state: TradingState
    reason: str


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One layer of risk limits (a limits file's layer, or a run-time change); every field is optional.

    Money and sizes are decimals (strings or numbers in JSON), counts are integers, windows are
    seconds. Unknown names are refused, so a misspelt limit is an error and not a silently unchanged one.
    """

    max_order_quantity: Money = UNSET
    max_order_notional: Money = UNSET
    price_collar_bps: Money = UNSET
    max_position: Money = UNSET
    max_gross_exposure: Money = UNSET
    max_net_exposure: Money = UNSET
    margin_rate: Money = UNSET
    max_orders_per_window: Count = UNSET
    order_window_s: Seconds = UNSET
    max_open_orders: Count = UNSET
    restricted: bool | UnsetType = UNSET
    capital: Money = UNSET
    max_daily_loss: Money = UNSET
    breaker_move_bps: Money = UNSET
    breaker_window_s: Seconds = UNSET
    breaker_cooldown_s: Seconds = UNSET
    error_burst_count: Count = UNSET
    error_burst_window_s: Seconds = UNSET


class LimitsChanged(Event, frozen=True, kw_only=True):
    """Risk limits for an account and/or symbol changed at run time.

    `limits` carries only what changes: a value sets a limit, null switches its check off, a limit
    left out keeps its value. Types are checked when the event is decoded (the error names
    `$.limits.<name>`); the risk core checks the values against the layer they land in.
    """

    account: Token | None = None
    symbol: Token | None = None
    limits: Limits
    actor: str


class TimerFired(Event, frozen=True, kw_only=True):
    """A clock tick recorded as an event, so schedule-driven cores (TWAP slices) replay exactly."""

    timer: Token
    due_ts: int


ControlEvent = (KillSwitchEngaged | KillSwitchReleased | CircuitBreakerTripped | CircuitBreakerReset
                | TradingStateChanged | LimitsChanged | TimerFired)

__all__ = [
    "CircuitBreakerReset", "CircuitBreakerTripped", "ControlEvent", "KillSwitchEngaged",
    "KillSwitchReleased", "Limits", "LimitsChanged", "TimerFired", "TradingState", "TradingStateChanged",
]

