"""Where live connectors put what they produce: events batch-published on the bus, bad input dead-lettered."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from events._base import Event
from events.audit import DeadLetter
from events.bus import Bus
from events.ids import derived_id
from processors.connector.replay import RECORDS

log = logging.getLogger(__name__)
MAX_PAYLOAD = 65_536


@dataclass
class FeedSink:
    """Publishes a connector's events in batches and its refused input as DeadLetters on `sq.dlq.<source>`."""

    bus: Bus
    source: str
    published: int = 0
    dead_lettered: int = 0
    reasons: list[str] = field(default_factory=list)

    async def emit(self, events: Sequence[Event]) -> None:
        """Publish events together (acks in flight at once); ids are deterministic, so a resend dedupes."""
        if not events:
            return
        await self.bus.publish_batch(events)
        self.published += len(events)
        RECORDS.labels(self.source, "published").inc(len(events))

    async def reject(self, where: str, reason: str, payload: bytes | str, *, ts: int) -> DeadLetter:
        """Dead-letter one message with the reason; counted and logged, and the feed carries on."""
        raw = payload.encode() if isinstance(payload, str) else payload
        try:
            text, encoding = raw[:MAX_PAYLOAD].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw[:MAX_PAYLOAD]).decode(), "base64"
        digest = hashlib.sha256(raw).hexdigest()[:32]
        letter = DeadLetter(id=derived_id(f"{self.source}:{where}:{digest}", "dlq"), ts=ts, source=self.source,
                            subject=where, reason=reason[:2000], payload=text,
                            payload_encoding=encoding)  # type: ignore[arg-type]
        await self.bus.publish(letter)
        self.dead_lettered += 1
        self.reasons.append(reason)
        RECORDS.labels(self.source, "dead_lettered").inc()
        log.warning("feed message dead-lettered", extra={"source": self.source, "where": where, "reason": reason})
        return letter


__all__ = ["FeedSink"]
