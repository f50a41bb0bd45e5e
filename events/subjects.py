"""Subject names and JetStream streams: which subject each event travels on, and which stream keeps it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events._base import TOKEN_PATTERN, Event
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
from events.market import Bar, BookDelta, BookSnapshot, BookTop, Trade, TradeSummary
from events.portfolio import RebalanceProposed, ReconciliationBreak, TargetWeightsSet, VenuePositionsReported
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

_TOKEN = re.compile(TOKEN_PATTERN)
# Control events without an account go to the `all` scope.
ALL_ACCOUNTS = "all"


class InvalidSubjectToken(ValueError):
    """A symbol, venue or account cannot be used as a NATS subject token."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field} {value!r} is not a subject token: use 1-64 of [A-Za-z0-9_-]")
        self.field = field
        self.value = value


def token(field: str, value: str) -> str:
    """Return `value` if it is a legal subject token, else raise naming the field."""
    if not _TOKEN.match(value):
        raise InvalidSubjectToken(field, value)
    return value


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]


STREAM_MD = StreamSpec("SQ_MD", ("sq.md.>",))
STREAM_TRADING = StreamSpec("SQ_TRADING", ("sq.ord.>", "sq.risk.>", "sq.exec.>", "sq.pf.>", "sq.ctl.>", "sq.rpt.>"))
STREAM_AUDIT = StreamSpec("SQ_AUDIT", ("sq.audit.>", "sq.dlq.>"))
STREAMS: tuple[StreamSpec, ...] = (STREAM_MD, STREAM_TRADING, STREAM_AUDIT)

INTENT_PREFIX = "sq.ord.intent."
CANCEL_PREFIX = "sq.ord.cancel."
DLQ_PREFIX = "sq.dlq."
WATERMARK_PREFIX = "sq.wal.watermark."


def stream_for_subject(subject: str) -> StreamSpec:
    """The stream that captures `subject`; raises KeyError for subjects outside every stream."""
    for spec in STREAMS:
        for pattern in spec.subjects:
            if subject.startswith(pattern[:-1]):
                return spec
    raise KeyError(f"subject {subject!r} is not captured by any ShrivenQuant stream")


def intent_subject(account: str) -> str:
    """Where order intents for `account` are published."""
    return INTENT_PREFIX + token("account", account)


def dlq_subject(source: str) -> str:
    """Where input refused by `source` is dead-lettered."""
    return DLQ_PREFIX + token("source", source)


def subject_for(event: Event) -> str:
    """The subject an event is published on (ARCHITECTURE.md, "Subjects and streams").

    Tokens were validated when the event was built, so this only formats.
    """
    match event:
        case Trade(venue=venue, symbol=symbol):
            return f"sq.md.trade.{venue}.{symbol}"
        case TradeSummary(venue=venue, symbol=symbol):
            return f"sq.md.summary.{venue}.{symbol}"
        case BookSnapshot(venue=venue, symbol=symbol) | BookDelta(venue=venue, symbol=symbol):
            return f"sq.md.book.{venue}.{symbol}"
        case BookTop(venue=venue, symbol=symbol):
            return f"sq.md.top.{venue}.{symbol}"
        case Bar(interval=interval, venue=venue, symbol=symbol):
            return f"sq.md.bar.{interval}.{venue}.{symbol}"
        case OrderIntent(account=account):
            return INTENT_PREFIX + account
        case CancelIntent(account=account):
            return CANCEL_PREFIX + account
        case RiskDecision(account=account):
            return f"sq.risk.decision.{account}"
        case ChildOrder(venue=venue, account=account) | ChildCancel(venue=venue, account=account):
            return f"sq.exec.child.{venue}.{account}"
        case ExecutionReport(venue=venue, account=account):
            return f"sq.exec.report.{venue}.{account}"
        case ParentOrderCompleted(account=account):
            return f"sq.exec.tca.{account}"
        case ParentOrderScheduled(account=account):
            return f"sq.exec.parent.{account}"
        case TradeReported(account=account):
            return f"sq.rpt.trade.{account}"
        case TargetWeightsSet(account=account):
            return f"sq.pf.targets.{account}"
        case RebalanceProposed(account=account):
            return f"sq.pf.rebalance.{account}"
        case ReconciliationBreak(account=account):
            return f"sq.pf.break.{account}"
        case VenuePositionsReported(venue=venue, account=account):
            return f"sq.pf.venuepos.{venue}.{account}"
        case KillSwitchEngaged(account=account) | KillSwitchReleased(account=account):
            return f"sq.ctl.killswitch.{account or ALL_ACCOUNTS}"
        case CircuitBreakerTripped(symbol=symbol) | CircuitBreakerReset(symbol=symbol):
            return f"sq.ctl.breaker.{symbol}"
        case TradingStateChanged(account=account):
            return f"sq.ctl.state.{account or ALL_ACCOUNTS}"
        case LimitsChanged(account=account):
            return f"sq.ctl.limits.{account or ALL_ACCOUNTS}"
        case TimerFired(timer=timer):
            return f"sq.ctl.timer.{timer}"
        case AuditEvent(kind=kind):
            return f"sq.audit.{kind}"
        case DeadLetter(source=source):
            return DLQ_PREFIX + source
    raise TypeError(f"no subject is defined for event type {type(event).__name__}")


def subscribed(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A predicate for the subjects any of `patterns` match: what a core reads, for filtering the WAL."""
    prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith(".>") and "*" not in pattern)
    if len(prefixes) == len(patterns):
        return lambda subject: subject.startswith(prefixes)
    return lambda subject: any(subject_matches(pattern, subject) for pattern in patterns)


def patterns_by_stream(patterns: Sequence[str], streams: Sequence[str]) -> dict[str, list[str]]:
    """The patterns each of `streams` captures: the server-side filters of one consumer per stream.

    A pattern outside every given stream is an error (a core declaring what it can never receive)."""
    out: dict[str, list[str]] = {stream: [] for stream in streams}
    for pattern in patterns:
        stream = stream_for_subject(pattern).name
        if stream not in out:
            raise ValueError(f"subject pattern {pattern!r} is in stream {stream}, which is not read ({list(streams)})")
        out[stream].append(pattern)
    return out


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` matches one token, a trailing `>` one or more."""
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, part in enumerate(pattern_tokens):
        if part == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if part != "*" and part != subject_tokens[index]:
            return False
    return len(pattern_tokens) == len(subject_tokens)
