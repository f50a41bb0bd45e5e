"""JSON wire codec: one encoder and one decoder per event family, reused (msgspec's performance advice)."""

from __future__ import annotations

from typing import Any, TypeAlias, get_args

import msgspec

from events._base import TRUSTED, Event
from events.audit import AuditEvent, DeadLetter
from events.control import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitsChanged,
    TimerFired,
    TradingStateChanged,
)
from events.ids import intent_id_for
from events.market import Bar, BookDelta, BookSnapshot, BookTop, Trade, TradeSummary
from events.partitions import on_wire
from events.portfolio import RebalanceProposed, ReconciliationBreak, TargetWeightsSet, VenuePositionsReported
from events.subjects import CANCEL_PREFIX, INTENT_PREFIX, subject_for
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
    TradeReported,
)

# Every event type, listed once: the union decoders and annotations use; EVENT_TYPES is read from it.
AnyEvent: TypeAlias = (
    Trade | TradeSummary | BookSnapshot | BookDelta | BookTop | Bar
    | OrderIntent | CancelIntent | RiskDecision | ChildOrder | ChildCancel | ExecutionReport | ParentOrderCompleted
    | ParentOrderScheduled
    | TradeReported
    | TargetWeightsSet | RebalanceProposed | ReconciliationBreak | VenuePositionsReported
    | KillSwitchEngaged | KillSwitchReleased | CircuitBreakerTripped | CircuitBreakerReset
    | TradingStateChanged | LimitsChanged | TimerFired
    | AuditEvent | DeadLetter
)
EVENT_TYPES: tuple[type[Event], ...] = get_args(AnyEvent)
EVENT_TYPES_BY_NAME: dict[str, type[Event]] = {t.__name__: t for t in EVENT_TYPES}

_encoder = msgspec.json.Encoder(decimal_format="string")
_any_decoder = msgspec.json.Decoder(AnyEvent)
_intent_decoder = msgspec.json.Decoder(OrderIntent)
_cancel_decoder = msgspec.json.Decoder(CancelIntent)
# What each subject family carries (see `events.subjects.subject_for`, which places every type): one
# typed decoder per family, so a message is decoded as the types its subject allows, not the whole union.
_TYPES_BY_FAMILY: dict[str, Any] = {
    "sq.md.trade": Trade, "sq.md.summary": TradeSummary, "sq.md.book": BookSnapshot | BookDelta, "sq.md.top": BookTop, "sq.md.bar": Bar,
    "sq.risk.decision": RiskDecision, "sq.exec.child": ChildOrder | ChildCancel, "sq.exec.report": ExecutionReport,
    "sq.exec.tca": ParentOrderCompleted, "sq.rpt.trade": TradeReported,
    "sq.pf.targets": TargetWeightsSet, "sq.pf.rebalance": RebalanceProposed, "sq.pf.break": ReconciliationBreak,
    "sq.pf.venuepos": VenuePositionsReported,
    "sq.ctl.killswitch": KillSwitchEngaged | KillSwitchReleased, "sq.ctl.breaker": CircuitBreakerTripped | CircuitBreakerReset,
    "sq.ctl.state": TradingStateChanged, "sq.ctl.limits": LimitsChanged, "sq.ctl.timer": TimerFired,
    "sq.audit": AuditEvent, "sq.dlq": DeadLetter,
}
_family_decoders = {family: msgspec.json.Decoder(types) for family, types in _TYPES_BY_FAMILY.items()}


class EventDecodeError(ValueError):
    """Bytes on a subject are not a valid event for it; `reason` keeps msgspec's `$.field` path."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"invalid event on {subject}: {reason}")
        self.subject = subject
        self.reason = reason


def encode(event: Event) -> bytes:
    """Encode an event as JSON, money as decimal strings."""
    return _encoder.encode(event)


def decode(data: bytes | memoryview) -> AnyEvent:
    """Decode any of our own events (tagged by `type`); unknown fields are tolerated for old readers."""
    return _any_decoder.decode(data)


def _family_decoder(subject: str) -> msgspec.json.Decoder[Any]:
    """The typed decoder for `subject`'s family (its first three tokens, or two for audit and dead letters)."""
    second = subject.find(".", 3)
    third = subject.find(".", second + 1)
    decoder = _family_decoders.get(subject[:third]) if third > 0 else None
    return decoder or _family_decoders.get(subject[:second]) or _any_decoder


def decode_for_subject(subject: str, data: bytes | memoryview) -> AnyEvent:
    """Decode what arrived on `subject` and check it belongs there: validated in full if it is an intent or a
    cancel (input from outside), else typed by its subject but not re-validated, since a processor built it.

    Raises EventDecodeError naming the field and the reason; never returns a half-valid event.
    """
    try:
        if subject.startswith(INTENT_PREFIX):
            event: AnyEvent = _intent_decoder.decode(data)
        elif subject.startswith(CANCEL_PREFIX):
            event = _cancel_decoder.decode(data)
        else:
            # The types and constraints msgspec checks still apply; only `__post_init__` checks, which ran
            # when the event was built, are skipped (events._base.TRUSTED).
            TRUSTED.on = True
            try:
                event = _family_decoder(subject).decode(data)
            finally:
                TRUSTED.on = False
    except (msgspec.DecodeError, ValueError, ArithmeticError) as exc:
        raise EventDecodeError(subject, str(exc) or type(exc).__name__) from exc
    expected = subject_for(event)
    # The broker adds the account's bucket token to order-path subjects (events.partitions); a token that
    # is not the account's own would put the order in another instance's share, so it is refused too.
    if subject != expected and subject != on_wire(expected):
        raise EventDecodeError(subject, f"an event of type {type(event).__name__} with these fields belongs on {expected}")
    return event


def complete_intent(intent: OrderIntent | CancelIntent, received_ts: int) -> Any:
    """Fill the id and ts an outside publisher may omit, deterministically from what was received.

    `received_ts` is the JetStream message time, so a replay from the WAL completes the
    intent identically.
    """
    changes: dict[str, object] = {}
    if not intent.id:
        if isinstance(intent, OrderIntent):
            changes["id"] = intent_id_for(intent.account, intent.client_order_id)
        else:
            key = intent.order_id or f"coid:{intent.client_order_id}"
            changes["id"] = intent_id_for(intent.account, f"cancel:{key}:{received_ts}")
    if not intent.ts:
        changes["ts"] = received_ts
    return msgspec.structs.replace(intent, **changes) if changes else intent


def to_builtins(event: Event) -> dict[str, Any]:
    """The event as JSON-ready builtins (for HTTP bodies and JSON lines)."""
    result: dict[str, Any] = msgspec.to_builtins(event, builtin_types=None, str_keys=True)
    return result
