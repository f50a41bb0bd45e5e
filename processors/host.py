"""Runs a pure core live: rebuild from the WAL, publish what a crash left unpublished, then follow JetStream.

Effectively-once (ARCHITECTURE.md, principle 4): outputs get ids derived from their input, so
while catching up the host knows an output was already published when an event with its id
appears later in the log. Whatever the core decided during catch-up that never appeared was
lost in a crash; it is published once catch-up ends, and JetStream's dedupe window drops any
copy the recorder had not yet written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge

from events._base import Event
from events.bus import Bus
from events.codec import AnyEvent, encode
from events.consumer import Delivery, dead_letter
from events.stopping import Stopped, unless_stopped
from events.subjects import subject_for
from store.follow import Envelope, LiveFeed, SubjectFilter, history, last_recorded, recorded_ids

log = logging.getLogger(__name__)
State = TypeVar("State")

APPLIED = Counter("sq_processor_events_total", "Events applied to a core", ["processor", "phase"])
EMITTED = Counter("sq_processor_outputs_total", "Events a core emitted and the host published", ["processor"])
CORE_ERRORS = Counter("sq_processor_core_errors_total", "Events a core raised on (dead-lettered)", ["processor"])
RECOVERED = Counter("sq_processor_recovered_outputs_total",
                    "Outputs decided during catch-up that were missing from the log", ["processor"])
LAG = Gauge("sq_processor_lag_events", "Events received but not yet applied", ["processor"])


@dataclass
class ProcessorHost(Generic[State]):
    """Feeds a core its streams (history, then live) and publishes what it decides."""

    name: str
    bus: Bus
    wal_root: Path
    streams: Sequence[str]
    state: State
    decide: Callable[[State, AnyEvent], list[Event]]
    evolve: Callable[[State, AnyEvent], State]
    wanted: SubjectFilter | None = None
    # Also evolve by each output at once (cores whose evolve is idempotent for their own outputs, such
    # as risk), so the next input sees them before they come back through the bus.
    apply_outputs: bool = False
    max_batch: int = 256
    # Called after each live batch is applied and its outputs published (metrics a runner keeps);
    # never during catch-up, so a restart does not replay history into counters.
    on_live: Callable[[State, list[Event]], None] | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    applied: int = 0
    recovered: list[Event] = field(default_factory=list)
    _feed: LiveFeed | None = None

    def step(self, envelope: Envelope) -> list[Event]:
        """Decide, then evolve, on one event; a core fault is logged with the event and yields no outputs."""
        event = envelope.event
        try:
            outputs = self.decide(self.state, event)
            self.state = self.evolve(self.state, event)
            if self.apply_outputs:
                for output in outputs:
                    self.state = self.evolve(self.state, output)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a core bug must not stop the processor; it is dead-lettered
            CORE_ERRORS.labels(self.name).inc()
            log.exception("core failed on event", extra={"processor": self.name, "event_id": event.id,
                                                         "event_type": type(event).__name__,
                                                         "stream": envelope.stream, "seq": envelope.seq})
            raise _CoreFault(envelope) from None
        self.applied += 1
        return outputs

    def catch_up(self) -> dict[str, int]:
        """Rebuild from the WAL; return the positions reached and leave unpublished outputs in `recovered`."""
        until = last_recorded(self.wal_root, self.streams)
        pending: dict[str, Event] = {}
        for envelope in history(self.wal_root, self.streams, {}, until=until, source=self.name, wanted=self.wanted):
            pending.pop(envelope.event.id, None)
            try:
                outputs = self.step(envelope)
            except _CoreFault:
                continue
            for output in outputs:
                pending[output.id] = output
            APPLIED.labels(self.name, "history").inc()
        if pending:
            # Outputs on subjects this core does not read (bars from trades, TCA, dead letters) never
            # came back through history: look them up in the WAL before calling them lost.
            recorded = recorded_ids(self.wal_root, {subject_for(output) for output in pending.values()})
            pending = {event_id: output for event_id, output in pending.items() if event_id not in recorded}
        self.recovered = list(pending.values())
        return until

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up, publish recovered outputs, then apply live events until `stop` is set."""
        started = time.monotonic()
        positions = await asyncio.to_thread(self.catch_up)
        if self.recovered:
            RECOVERED.labels(self.name).inc(len(self.recovered))
            log.warning("publishing outputs a previous run decided but never published",
                        extra={"processor": self.name, "count": len(self.recovered)})
            await self.bus.publish_batch(self.recovered)
        log.info("caught up from the WAL", extra={"processor": self.name, "positions": positions,
                                                  "events": self.applied, "seconds": time.monotonic() - started})
        self._feed = LiveFeed(self.bus, self.streams, positions, source=self.name, wanted=self.wanted)
        await self._feed.start()
        self.caught_up.set()
        try:
            while True:
                try:
                    first = await unless_stopped(self._feed.get(), stop)
                except Stopped:
                    break
                await self._apply_live([first, *self._drain()])
        finally:
            await self._feed.stop()

    def _drain(self) -> list[Envelope]:
        assert self._feed is not None
        batch = self._feed.drain(self.max_batch - 1)
        LAG.labels(self.name).set(self._feed.lag())
        return batch

    async def _apply_live(self, envelopes: list[Envelope]) -> None:
        outputs: list[Event] = []
        for envelope in envelopes:
            try:
                outputs.extend(self.step(envelope))
            except _CoreFault as fault:
                delivery = Delivery(fault.envelope.subject, fault.envelope.stream, fault.envelope.seq, 1,
                                    fault.envelope.stored_ts, 0)
                await dead_letter(self.bus, self.name, fault.envelope.subject, encode(fault.envelope.event),
                                  delivery, f"{self.name} core raised on this event (see its log)")
            APPLIED.labels(self.name, "live").inc()
        if outputs:
            await self.bus.publish_batch(outputs)
            EMITTED.labels(self.name).inc(len(outputs))
        if self.on_live is not None:
            self.on_live(self.state, outputs)


class _CoreFault(Exception):
    """A core raised on an event; carries the event's envelope to the dead-letter path."""

    def __init__(self, envelope: Envelope) -> None:
        super().__init__(f"core fault on {envelope.stream}#{envelope.seq}")
        self.envelope = envelope
