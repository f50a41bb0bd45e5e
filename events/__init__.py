"""The event catalogue, subjects, codec, bus and embedded broker that every ShrivenQuant part stands on."""

from events._base import SCHEMA_VERSION, Event, InvalidValue
from events.audit import AuditEvent, DeadLetter
from events.broker import (
    Broker,
    BrokerNotFound,
    BrokerStartError,
    embedded_broker,
    find_nats_server,
    free_port,
)
from events.bus import Bus, Outgoing, PublishError, StreamSettings, outgoing, resolve_url
from events.codec import (
    EVENT_TYPES,
    EVENT_TYPES_BY_NAME,
    AnyEvent,
    EventDecodeError,
    complete_intent,
    decode,
    decode_for_subject,
    encode,
    to_builtins,
)
from events.consumer import ConsumerRunner, ConsumerSpec, ConsumerStats, Delivery, TransientError
from events.control import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    KillSwitchEngaged,
    KillSwitchReleased,
    Limits,
    LimitsChanged,
    TimerFired,
    TradingState,
    TradingStateChanged,
)
from events.ids import derived_id, intent_id_for, new_event_id
from events.market import Bar, BookDelta, BookSnapshot, BookTop, Trade, TradeSummary
from events.portfolio import RebalanceProposed, ReconciliationBreak, TargetWeightsSet, VenuePositionsReported
from events.subjects import STREAMS, StreamSpec, stream_for_subject, subject_for, subject_matches
from events.trading import (
    Algo,
    CancelIntent,
    CheckFailure,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    LimitAlgo,
    MarketAlgo,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    PovAlgo,
    RiskDecision,
    TradeReported,
    TwapAlgo,
    VwapAlgo,
)

__all__ = [
    "EVENT_TYPES", "EVENT_TYPES_BY_NAME", "SCHEMA_VERSION", "STREAMS",
    "Algo", "AnyEvent", "AuditEvent", "Bar", "BookDelta", "BookSnapshot", "BookTop", "Broker",
    "BrokerNotFound", "BrokerStartError", "Bus", "CancelIntent", "CheckFailure", "ChildCancel", "ChildOrder",
    "CircuitBreakerReset", "CircuitBreakerTripped", "ConsumerRunner", "ConsumerSpec", "ConsumerStats",
    "DeadLetter", "Delivery", "Event", "EventDecodeError", "ExecutionReport", "InvalidValue",
    "KillSwitchEngaged", "KillSwitchReleased", "LimitAlgo", "Limits", "LimitsChanged", "MarketAlgo", "OrderIntent",
    "Outgoing", "ParentOrderCompleted", "ParentOrderScheduled", "PovAlgo", "PublishError", "RebalanceProposed", "ReconciliationBreak", "RiskDecision",
    "StreamSettings", "StreamSpec", "TargetWeightsSet", "TimerFired", "Trade", "TradeReported", "TradeSummary", "TradingState",
    "TradingStateChanged", "TransientError", "TwapAlgo", "VenuePositionsReported", "VwapAlgo",
    "complete_intent", "decode", "decode_for_subject", "derived_id", "embedded_broker", "encode",
    "find_nats_server", "free_port", "intent_id_for", "new_event_id", "outgoing", "resolve_url",
    "stream_for_subject", "subject_for", "subject_matches", "to_builtins",
]
