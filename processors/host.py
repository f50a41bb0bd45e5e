"""Runs a pure core live: restore the newest snapshot, fold in the tail from the WAL, publish what a crash
left unpublished, then follow JetStream, snapshotting every so often.

Recovery is bounded (ARCHITECTURE.md, principle 10): a restart reads only what was recorded after
the newest valid snapshot's positions (processors.snapshots), so it takes about as long with a
billion events of history as with none. Without a usable snapshot the core is rebuilt from the
first record, as before.

Effectively-once (ARCHITECTURE.md, principle 4): outputs get ids derived from their input, so
while catching up the host knows an output was already published when an event with its id
appears later in the log. Whatever the core decided during catch-up that never appeared was
lost in a crash; it is published once catch-up ends, and JetStream's dedupe window drops any
copy the recorder had not yet written.

A fault stops the fold (STYLE.md): when a core raises on an event, the event is dead-lettered with the
error, its id is remembered as poison, and the state is rebuilt from the newest snapshot and the WAL
without it, never carried on from whatever the core had half changed. The fold itself is
`processors.fold.step`, the one every replay and test runs too.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from events._base import Event
from events.bus import Bus
from events.codec import AnyEvent, encode
from events.consumer import Delivery, dead_letter
from events.stopping import Stopped, unless_stopped
from events.subjects import patterns_by_stream, subject_for, subscribed
from processors.fold import step
from processors.partition import Partition
from processors.snapshots import FORMAT_VERSION, SNAPSHOT_AGE_EVENTS, SnapshotHeader, SnapshotStore, seal
from store.follow import Envelope, HistoryGone, LiveFeed, SubjectFilter, history, last_recorded, recorded_ids

log = logging.getLogger(__name__)
State = TypeVar("State")

APPLIED = Counter("sq_processor_events_total", "Events applied to a core", ["processor", "phase"])
EMITTED = Counter("sq_processor_outputs_total", "Events a core emitted and the host published", ["processor"])
CORE_ERRORS = Counter("sq_processor_core_errors_total", "Events a core raised on (dead-lettered)", ["processor"])
REBUILDS = Counter("sq_processor_rebuilds_total", "State rebuilds after a core fault", ["processor"])
RECOVERED = Counter("sq_processor_recovered_outputs_total",
                    "Outputs decided during catch-up that were missing from the log", ["processor"])
LAG = Gauge("sq_processor_lag_events", "Events received but not yet applied", ["processor"])
SNAPSHOT_FAILURES = Counter("sq_snapshot_failures_total", "Snapshots that could not be written", ["processor"])
RESTORE_SECONDS = Histogram("sq_processor_restore_seconds", "Snapshot load plus tail, at start", ["processor"],
                            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300))
# A published output can be stored a little before its cause by a broker clock that differs from the
# cause's (another stream leader in a cluster): look for recorded outputs this far before the tail.
_CLOCK_SKEW_NS = 60 * 1_000_000_000
# A rebuild after a live fault waits for the recorder to hold what the host had applied; say so this often.
_WAIT_LOG_S = 10.0


def _both(first: SubjectFilter | None, second: SubjectFilter) -> SubjectFilter:
    """A filter passing what both pass (`first` None passes everything)."""
    return second if first is None else (lambda subject: first(subject) and second(subject))


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
    # The subject patterns the core reads (its SUBSCRIPTIONS): the broker then delivers only those
    # (one filtered consumer per stream) and the WAL history is read through them. `wanted` may
    # narrow further on the client.
    subscriptions: Sequence[str] | None = None
    # This instance's share of the accounts: the broker delivers only its buckets of each order-path
    # subject, and the WAL history and the plain (unbucketed) subjects are sorted by account here.
    partition: Partition = field(default_factory=Partition)
    # Also evolve by each output at once (cores whose evolve is idempotent for their own outputs, such
    # as risk), so the next input sees them before they come back through the bus.
    apply_outputs: bool = False
    max_batch: int = 256
    # Called with the state, the batch's events and its outputs after each live batch is applied and its
    # outputs handed to the broker (metrics a runner keeps); never during catch-up, so a restart does not
    # replay history into counters.
    on_live: Callable[[State, list[AnyEvent], list[Event]], None] | None = None
    # Where snapshots go (None: never snapshot, always rebuild from the first record), and how often.
    snapshots: SnapshotStore | None = None
    snapshot_every_events: int = 25_000
    snapshot_every_s: float = 30.0
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    applied: int = 0
    recovered: list[Event] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)    # last stream sequence folded in, per stream
    restored_from: SnapshotHeader | None = None
    # Ids of events the core raised on: dead-lettered once, then passed over wherever they turn up again
    # (a redelivery, history read in a rebuild), so one bad event cannot make the host fault forever.
    poison: set[str] = field(default_factory=set)
    _origin: bytes = b""            # the state the host was given, pickled: a rebuild without a snapshot
    _stop: asyncio.Event | None = None
    _feed: LiveFeed | None = None
    _generation: int = 0
    _events_total: int = 0          # events folded in since the first record (carried by snapshots)
    _last_stored_ts: int = 0
    _since_snapshot: int = 0
    _snapshot_at: float = field(default_factory=time.monotonic)
    _snapshot_task: asyncio.Task[None] | None = None
    # The previous live batch's outputs while their acks are awaited: the next batch is applied meanwhile,
    # and published only after these are acknowledged, so a retried publish never overtakes a later one.
    _in_flight: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        for narrower in (self.subscriptions is not None and subscribed(self.subscriptions),
                         self.partition.count > 1 and self.partition.owns):
            if narrower:
                self.wanted = _both(self.wanted, narrower)
        # A copy, not the object: the core may change the state it is given in place.
        self._origin = pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)

    def _apply(self, envelope: Envelope) -> list[Event]:
        """Fold one event into the state and return what the core decided; CoreFault if the core raised."""
        event = envelope.event
        try:
            self.state, outputs = step(self.decide, self.evolve, self.state, event, apply_outputs=self.apply_outputs)
        except Exception as exc:  # noqa: BLE001 - a core bug must not stop the processor: dead-letter, rebuild
            CORE_ERRORS.labels(self.name).inc()
            log.exception("core failed on event", extra={"processor": self.name, "event_id": event.id,
                                                         "event_type": type(event).__name__,
                                                         "stream": envelope.stream, "seq": envelope.seq})
            raise CoreFault(envelope, exc) from exc
        self.applied += 1
        self._events_total += 1
        self._passed(envelope)
        return outputs

    def _passed(self, envelope: Envelope) -> None:
        """The fold has gone past this event (applied, or passed over as poison)."""
        self.positions[envelope.stream] = envelope.seq
        self._last_stored_ts = envelope.stored_ts

    def restore(self, header: SnapshotHeader, state: State) -> None:
        """Start from a snapshot: its state, positions and counters (before `catch_up`)."""
        self.state = state
        self.positions = dict(header.positions)
        self._generation = header.generation
        self._events_total = header.events
        self._last_stored_ts = header.last_stored_ts
        self.restored_from = header

    def catch_up(self, until: Mapping[str, int] | None = None, *, find_lost: bool = True) -> dict[str, int]:
        """Fold in the WAL after the current positions (up to `until`, else all of it); return the positions
        reached and leave unpublished outputs in `recovered` (none unless `find_lost`).

        Raises CoreFault when the core raises: the state is then half-applied, and the caller rebuilds it.
        """
        after = dict(self.positions)
        if until is None:
            recorded_until = last_recorded(self.wal_root, self.streams)
            until = {stream: max(recorded_until[stream], after.get(stream, 0)) for stream in self.streams}
        else:
            until = {stream: until.get(stream, 0) for stream in self.streams}
        pending: dict[str, Event] = {}
        tail_from_ts: int | None = None
        applied_before = self.applied
        for envelope in history(self.wal_root, self.streams, after, until=until, source=self.name,
                                wanted=self.wanted):
            pending.pop(envelope.event.id, None)
            if envelope.event.id in self.poison:
                self._passed(envelope)          # dead-lettered when the core raised on it
                continue
            outputs = self._apply(envelope)
            if not find_lost:
                continue
            if outputs and tail_from_ts is None:
                tail_from_ts = envelope.stored_ts
            for output in outputs:
                pending[output.id] = output
        APPLIED.labels(self.name, "history").inc(self.applied - applied_before)
        if pending and tail_from_ts is not None:
            # Outputs on subjects this core does not read (bars from trades, TCA, dead letters) never
            # came back through history: look them up in the WAL before calling them lost. Only what
            # was stored since the tail began can be one of them (the segments' time index skips the rest).
            recorded = recorded_ids(self.wal_root, {subject_for(output) for output in pending.values()},
                                    since_ts=tail_from_ts - _CLOCK_SKEW_NS)
            pending = {event_id: output for event_id, output in pending.items() if event_id not in recorded}
        self.recovered = list(pending.values())
        self.positions.update(until)
        return until

    async def run(self, stop: asyncio.Event) -> None:
        """Restore, catch up, publish recovered outputs, then apply live events until `stop` is set."""
        started = time.monotonic()
        self._stop = stop
        if self.snapshots is not None:
            newest = await self.snapshots.newest()
            if newest is not None:
                self.restore(*newest)
        while True:
            positions = await self._catch_up_past_faults()
            await self._publish_recovered()
            filters = (None if self.subscriptions is None
                       else patterns_by_stream(self.partition.filters(self.subscriptions), self.streams))
            self._feed = LiveFeed(self.bus, self.streams, positions, source=self.name, wanted=self.wanted,
                                  filter_subjects=filters, stop=stop)
            try:
                await self._feed.start()
                break
            except HistoryGone as gone:
                # The broker's limits dropped what follows the WAL as we read it; if the recorder has
                # written more meanwhile, read that from the WAL too, then try the broker again.
                if last_recorded(self.wal_root, [gone.stream])[gone.stream] < gone.needed_from:
                    raise
        seconds = time.monotonic() - started
        RESTORE_SECONDS.labels(self.name).observe(seconds)
        log.info("caught up from the WAL", extra={
            "processor": self.name, "positions": positions, "tail_events": self.applied, "seconds": seconds,
            "snapshot": None if self.restored_from is None else {
                "generation": self.restored_from.generation, "positions": self.restored_from.positions}})
        self._since_snapshot = self.applied
        self.caught_up.set()
        self._maybe_snapshot()          # a long catch-up is worth keeping at once
        try:
            while True:
                if self._feed.lag() == 0:
                    await self._settle()        # nothing to apply meanwhile: a publish failure surfaces now
                try:
                    first = await self._feed.get(timeout=self._snapshot_wait())
                except Stopped:
                    break
                except TimeoutError:
                    self._maybe_snapshot()      # quiet: the time-based snapshot still comes
                    continue
                try:
                    await self._apply_live([first, *self._drain()])
                except Stopped:
                    break                       # stopped while a rebuild waited: the state is not worth keeping
                if self._snapshot_due():
                    await self._settle()        # a snapshot holds only state whose outputs are published
                    self._maybe_snapshot()
            await self._settle()
        finally:
            if self._in_flight is not None and not self._in_flight.done():
                self._in_flight.cancel()        # stopping on an error: recovery republishes what was not acked
            await self._feed.stop()
            if self._snapshot_task is not None:
                await asyncio.gather(self._snapshot_task, return_exceptions=True)

    async def _catch_up_past_faults(self, until: Mapping[str, int] | None = None, *,
                                    find_lost: bool = True) -> dict[str, int]:
        """`catch_up`, started over from the newest snapshot (or the initial state) after each event the
        core raises on, with that event dead-lettered and passed over; each fault adds one poison id, so
        this ends."""
        while True:
            try:
                return await asyncio.to_thread(self.catch_up, until, find_lost=find_lost)
            except CoreFault as fault:
                await self._dead_letter(fault)
                await self._reset(until)

    async def _rebuild(self) -> None:
        """Rebuild the state after a live fault: the newest snapshot, then the WAL up to the positions the
        host had reached (the poison event included, and passed over)."""
        REBUILDS.labels(self.name).inc()
        target = {stream: self.positions.get(stream, 0) for stream in self.streams}
        await self._wait_recorded(target)
        await self._reset(target)
        # Every output decided up to these positions was published when they were first applied (the
        # batch in progress publishes before the rebuild starts), so none is looked for or sent again.
        await self._catch_up_past_faults(target, find_lost=False)
        log.warning("state rebuilt after a core fault", extra={
            "processor": self.name, "positions": target, "poison": len(self.poison),
            "snapshot": None if self.restored_from is None else self.restored_from.generation})
        # A snapshot past the poison spares the next start from meeting it again.
        self._since_snapshot = max(self._since_snapshot, self.snapshot_every_events)

    async def _wait_recorded(self, target: Mapping[str, int]) -> None:
        """Wait until the WAL holds every stream up to `target` (the recorder writes what the host was
        sent a moment later); Stopped if the host is stopped first."""
        assert self._stop is not None, "run() first"
        delay, waited, told = 0.005, 0.0, 0.0
        while True:
            recorded = await asyncio.to_thread(last_recorded, self.wal_root, self.streams)
            if all(recorded[stream] >= target[stream] for stream in self.streams):
                return
            if waited - told >= _WAIT_LOG_S:
                told = waited
                log.warning("rebuild waits for the recorder", extra={"processor": self.name, "needed": dict(target),
                                                                    "recorded": recorded, "waited_s": waited})
            await unless_stopped(asyncio.sleep(delay), self._stop)
            waited += delay
            delay = min(delay * 2, 0.5)

    async def _reset(self, bound: Mapping[str, int] | None) -> None:
        """Throw the state away: back to the newest snapshot (one within `bound`), else the initial state."""
        if self._snapshot_task is not None:
            # A snapshot still being written would take the next generation's slot: let it finish first.
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        newest = await self.snapshots.newest() if self.snapshots is not None else None
        if newest is not None and (bound is None or all(
                newest[0].positions.get(stream, 0) <= bound.get(stream, 0) for stream in self.streams)):
            generation = self._generation
            self.restore(*newest)
            self._generation = max(generation, newest[0].generation)
            return
        self.state = pickle.loads(self._origin)      # our own bytes, from __post_init__
        self.positions = {}
        self._events_total = 0
        self._last_stored_ts = 0
        self.restored_from = None

    async def _dead_letter(self, fault: CoreFault) -> None:
        """Publish the event the core raised on, with the error, and remember it as poison."""
        envelope = fault.envelope
        self.poison.add(envelope.event.id)
        delivery = Delivery(envelope.subject, envelope.stream, envelope.seq, 1, envelope.stored_ts, 0)
        await dead_letter(self.bus, self.name, envelope.subject, encode(envelope.event), delivery,
                          f"{self.name} core raised {fault.error!r} on this event; its state was rebuilt "
                          f"from the snapshot and the log without it")

    async def _publish_recovered(self) -> None:
        """Publish what catch-up decided that the log does not hold (lost in a crash, or decided while down)."""
        if not self.recovered:
            return
        RECOVERED.labels(self.name).inc(len(self.recovered))
        kinds = collections.Counter(type(output).__name__ for output in self.recovered)
        log.warning("publishing outputs decided during catch-up that the log does not hold",
                    extra={"processor": self.name, "count": len(self.recovered), "types": dict(kinds)})
        await self.bus.publish_batch(self.recovered)
        self.recovered = []

    def _snapshot_wait(self) -> float | None:
        """How long to wait for the next event before a snapshot falls due anyway (None: never)."""
        if self.snapshots is None:
            return None
        if self._since_snapshot == 0:
            return self.snapshot_every_s
        if self._since_snapshot >= self.snapshot_every_events:
            return 0.05         # due, but the previous one is still being written
        return max(0.05, self.snapshot_every_s - (time.monotonic() - self._snapshot_at))

    def _maybe_snapshot(self) -> None:
        """Start writing a snapshot when N events or T seconds have passed since the last (one at a time).

        The state is pickled here, on the loop, between batches, so it is a consistent copy whose
        every output is already published; framing, hashing and the upload run off the hot path.
        """
        SNAPSHOT_AGE_EVENTS.labels(self.name).set(self._since_snapshot)
        if self.snapshots is None or not self._snapshot_due():
            return
        self._generation += 1
        expected = self.snapshots.expected
        header = SnapshotHeader(format=FORMAT_VERSION, processor=expected.processor, partition=expected.partition,
                                state_version=expected.state_version, origin=expected.origin,
                                positions=dict(self.positions), generation=self._generation,
                                last_stored_ts=self._last_stored_ts, events=self._events_total)
        pickled = pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self._snapshot_task = asyncio.create_task(self._write_snapshot(header, pickled))

    def _snapshot_due(self) -> bool:
        """Whether N events or T seconds have passed since the last snapshot and none is being written."""
        if self.snapshots is None or self._since_snapshot == 0:
            return False
        if self._since_snapshot < self.snapshot_every_events and \
                time.monotonic() - self._snapshot_at < self.snapshot_every_s:
            return False
        return self._snapshot_task is None or self._snapshot_task.done()

    async def _write_snapshot(self, header: SnapshotHeader, pickled: bytes) -> None:
        assert self.snapshots is not None
        try:
            blob = await asyncio.to_thread(seal, header, pickled)
            await self.snapshots.save(header, blob)
        except Exception:  # noqa: BLE001 - a failed snapshot only lengthens the next restart; counted, logged
            SNAPSHOT_FAILURES.labels(self.name).inc()
            log.exception("snapshot not written", extra={"processor": self.name, "generation": header.generation})

    def lag(self) -> int | None:
        """Live events received but not yet applied (None until the host follows the broker)."""
        return self._feed.lag() if self._feed is not None else None

    def _drain(self) -> list[Envelope]:
        assert self._feed is not None
        batch = self._feed.drain(self.max_batch - 1)
        LAG.labels(self.name).set(self._feed.lag())
        return batch

    async def _apply_live(self, envelopes: list[Envelope]) -> None:
        outputs: list[Event] = []
        published = 0
        for envelope in envelopes:
            if envelope.event.id in self.poison:
                self._passed(envelope)          # redelivered after it was dead-lettered
                continue
            try:
                outputs.extend(self._apply(envelope))
            except CoreFault as fault:
                # What the batch decided before the fault came from a sound state: out it goes first (and
                # the previous batch's, still in flight), acknowledged, before the rebuild reads the WAL.
                await self._settle()
                await self._publish(outputs[published:])
                published = len(outputs)
                await self._dead_letter(fault)
                self._passed(envelope)
                await self._rebuild()
        APPLIED.labels(self.name, "live").inc(len(envelopes))       # once per batch: a label lookup costs
        self._since_snapshot += len(envelopes)
        await self._settle()
        if outputs[published:]:
            self._in_flight = asyncio.create_task(self._publish(outputs[published:]))
            # Two turns of the loop: the task hands the batch to the client, then nats-py's flusher writes it,
            # so the next hop has it before this process applies its next batch (acks come in meanwhile).
            await asyncio.sleep(0)
        # A batch that decided nothing (market data) turns the loop too: an intent in the socket is read next.
        await asyncio.sleep(0)
        if self.on_live is not None:
            self.on_live(self.state, [envelope.event for envelope in envelopes], outputs)

    async def _publish(self, outputs: list[Event]) -> None:
        if outputs:
            await self.bus.publish_batch(outputs)
            EMITTED.labels(self.name).inc(len(outputs))

    async def _settle(self) -> None:
        """Wait until the previous batch's outputs are acknowledged; raise if they could not be published."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight


class CoreFault(Exception):
    """A core raised on an event: the event's envelope and the error, for the dead-letter and the rebuild."""

    def __init__(self, envelope: Envelope, error: Exception) -> None:
        super().__init__(f"core fault on {envelope.stream}#{envelope.seq}: {error!r}")
        self.envelope = envelope
        self.error = error
