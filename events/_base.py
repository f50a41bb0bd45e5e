"""The common shape of every event and the value types (tokens, exact money) events are built from."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

SCHEMA_VERSION = 1

# Subject tokens: NATS subjects are split on '.', and '*' / '>' are wildcards, so symbols,
# venues and accounts are restricted to a safe alphabet (ARCHITECTURE.md, "Subjects").
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
Token = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, description="subject token [A-Za-z0-9_-]{1,64}")]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="UUIDv7 or other time-ordered id")]
TimestampNs = Annotated[int, msgspec.Meta(ge=0, description="nanoseconds since the Unix epoch")]
Side = Literal["BUY", "SELL"]
TimeInForce = Literal["GTC", "IOC", "FOK", "DAY"]

# Bounds on exact decimals: enough for any real price or size, small enough that nonsense
# (1e300 shares, 40 decimal places) is refused at the edge rather than deep in a processor.
MAX_DECIMAL_PLACES = 12
MAX_MAGNITUDE = Decimal(10) ** 15


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of every fact on the bus: identity, event time, causal links and schema version."""

    id: EventId
    ts: TimestampNs
    correlation_id: str | None = None
    causation_id: str | None = None
    version: int = SCHEMA_VERSION


class _Trusted(threading.local):
    """Whether this thread is decoding events a ShrivenQuant processor wrote (see `events.codec.decode_for_subject`)."""

    on = False


# Checks in `__post_init__` run when an event is built (at the edge: an intent, what a connector
# parses) and return at once while it is only decoded again downstream (ARCHITECTURE.md, "validate at
# the edge, once"); msgspec has no switch to skip `__post_init__` on decode, so the decoder sets this.
TRUSTED = _Trusted()


class InvalidValue(ValueError):
    """A field holds a value outside what the domain allows; the field, value and limit are attributes."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


def check_decimal(field: str, value: Decimal, *, positive: bool = False, non_negative: bool = False) -> None:
    """Refuse NaN, infinities, absurd magnitudes and precision, and (optionally) signs."""
    if not value.is_finite():
        raise InvalidValue(field, value, "is not a finite number")
    if abs(value) >= MAX_MAGNITUDE:
        raise InvalidValue(field, value, f"is beyond the largest allowed magnitude {MAX_MAGNITUDE:.0E}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise InvalidValue(field, value, f"has {-exponent} decimals, at most {MAX_DECIMAL_PLACES} allowed")
    if positive and value <= 0:
        raise InvalidValue(field, value, "must be greater than 0")
    if non_negative and value < 0:
        raise InvalidValue(field, value, "must not be negative")


def check_levels(field: str, levels: list[tuple[Decimal, Decimal]]) -> None:
    """Check book levels: positive prices and non-negative sizes (0 deletes a level in a delta)."""
    for index, (price, size) in enumerate(levels):
        check_decimal(f"{field}[{index}].price", price, positive=True)
        check_decimal(f"{field}[{index}].size", size, non_negative=True)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_instant_ns(text: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 date or time (UTC unless it has an offset); ValueError if not one.

    Integer arithmetic: a float timestamp times 1e9 loses the last digits.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
