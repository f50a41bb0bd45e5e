"""Portfolio outputs: target weights, rebalance proposals and reconciliation breaks."""

from __future__ import annotations

from decimal import Decimal

from events._base import Event, TimestampNs, Token


class TargetWeightsSet(Event, frozen=True, kw_only=True):
    """The weights an account should hold, per symbol, and the method that chose them."""

    account: Token
    weights: dict[str, float]
    method: str


class RebalanceProposed(Event, frozen=True, kw_only=True):
    """The trades that move an account from its current weights to its targets."""

    account: Token
    trades: dict[str, Decimal]
    drift_threshold: float
    intent_ids: list[str] = []


class ReconciliationBreak(Event, frozen=True, kw_only=True):
    """Positions from our fills disagree with what the venue reports."""

    account: Token
    venue: Token
    symbol: Token
    ours: Decimal
    venue_reported: Decimal


class VenuePositionsReported(Event, frozen=True, kw_only=True):
    """What a venue says an account holds, per symbol, for reconciliation against our fills."""

    account: Token
    venue: Token
    positions: dict[str, Decimal]
    as_of_ts: TimestampNs | None = None
