"""Reconciliation: positions from our fills against what the venue reports, one break per mismatch."""

from __future__ import annotations

from decimal import Decimal

from events.ids import derived_id
from events.portfolio import ReconciliationBreak

ZERO = Decimal(0)


def reconcile(account: str, venue: str, ours: dict[str, Decimal], venue_reported: dict[str, Decimal], *,
              cause_id: str, ts: int, tolerance: Decimal = ZERO) -> list[ReconciliationBreak]:
    """A ReconciliationBreak for every symbol whose quantities differ by more than `tolerance`.

    A symbol missing on one side counts as flat there, so a position the venue holds that we
    never filled (or the reverse) is a break too. Ids derive from `cause_id` (the venue report
    that triggered the check) and the symbol, so a redelivered report yields the same breaks.
    """
    breaks = []
    for symbol in sorted(set(ours) | set(venue_reported)):
        mine, theirs = ours.get(symbol, ZERO), venue_reported.get(symbol, ZERO)
        if abs(mine - theirs) > tolerance:
            breaks.append(ReconciliationBreak(
                id=derived_id(cause_id, f"break:{symbol}"), ts=ts, account=account, venue=venue, symbol=symbol,
                ours=mine, venue_reported=theirs, causation_id=cause_id))
    return breaks
