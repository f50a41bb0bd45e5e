"""Control events: kill switch, circuit breakers, trading state, limit changes and timers."""

from __future__ import annotations

from typing import Literal

from events._base import Event, Token

TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]


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


class LimitsChanged(Event, frozen=True, kw_only=True):
    """Risk limits for an account and/or symbol changed at run time; `limits` maps limit name to value."""

    account: Token | None = None
    symbol: Token | None = None
    limits: dict[str, str]
    actor: str


class TimerFired(Event, frozen=True, kw_only=True):
    """A clock tick recorded as an event, so schedule-driven cores (TWAP slices) replay exactly."""

    timer: Token
    due_ts: int


ControlEvent = (KillSwitchEngaged | KillSwitchReleased | CircuitBreakerTripped | CircuitBreakerReset
                | TradingStateChanged | LimitsChanged | TimerFired)

__all__ = [
    "CircuitBreakerReset", "CircuitBreakerTripped", "ControlEvent", "KillSwitchEngaged",
    "KillSwitchReleased", "LimitsChanged", "TimerFired", "TradingState", "TradingStateChanged",
]

