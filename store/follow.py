"""Catch up from the WAL, then follow JetStream live: the input side of every processor and projection.

History from several streams is merged by the time the broker stored each message (the
recorder keeps JetStream's timestamp as the record time), then stream order; live delivery
starts right after the last sequence the WAL held for each stream, with ordered consumers, so
no consumer state on the server is relied on (ARCHITECTURE.md, principle 4).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter

from events.bus import Bus
from events.codec import AnyEvent, EventDecodeError, complete_intent, decode_for_subject
from events.consumer import dead_letter, parse_ack_subject
from events.partitions import plain
from events.stopping import Stopped
from events.subjects import STREAM_MD
from events.trading import CancelIntent, OrderIntent
from store.reader import Record, WalReader

log = logging.getLogger(__name__)

UNDECODABLE = Counter("sq_follow_undecodable_total", "Messages that were not valid events, by phase",
                      ["source", "phase"])
SubjectFilter = Callable[[str], bool]
# A live feed's callbacks turn the event loop after this many messages (about a millisecond of decoding).
YIELD_EVERY = 32


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event with where it sits in the log: stream, stream sequence, subject and broker time."""

    event: AnyEvent
    stream: str
    seq: int
    subject: str
    stored_ts: int
    live: bool


def completed(event: AnyEvent, stored_ts: int) -> AnyEvent:
    """Intents from outside may lack id and ts: fill them from the broker time, identically live and in replay."""
    if isinstance(event, OrderIntent | CancelIntent) and (not event.id or not event.ts):
        result: AnyEvent = complete_intent(event, stored_ts)
        return result
    return event


def wal_dir(wal_root: Path, stream: str) -> Path:
    """Where the recorder keeps the WAL of one stream."""
    return wal_root / stream


def last_recorded(wal_root: Path, streams: Sequence[str]) -> dict[str, int]:
    """The last WAL sequence per stream (0 where nothing is recorded yet)."""
    positions = {}
    for stream in streams:
        directory = wal_dir(wal_root, stream)
        positions[stream] = (WalReader(directory, persist_index=False).last_seq or 0) if directory.exists() else 0
    return positions


class _IdOnly(msgspec.Struct):
    """Just an event's id, read without decoding the rest."""

    id: str = ""


_id_decoder = msgspec.json.Decoder(_IdOnly)


def recorded_ids(wal_root: Path, subjects: set[str], *, since_ts: int | None = None) -> set[str]:
    """Ids of every recorded event on one of `subjects` (plain, as published) stored at or after `since_ts`
    (broker time), in any stream's WAL under `wal_root`.

    Segments stored wholly before `since_ts` are skipped by their seals, and the one it falls in is
    entered through its sparse time index, so a restart reads only the records since its tail began.
    """
    found: set[str] = set()
    if not subjects or not wal_root.exists():
        return found
    for directory in sorted(p for p in wal_root.iterdir() if p.is_dir()):
        for record in WalReader(directory).records(start_ts=since_ts):
            if plain(record.subject) in subjects:
                try:
                    found.add(_id_decoder.decode(record.payload).id)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue  # not an event of ours: it cannot be one of our outputs
    return found


def history(wal_root: Path, streams: Sequence[str], after: Mapping[str, int], *, source: str,
            until: Mapping[str, int] | None = None, wanted: SubjectFilter | None = None) -> Iterator[Envelope]:
    """Recorded events in (after[stream], until[stream]], merged by (broker time, stream, sequence).

    A record that is not a valid event was dead-lettered when it first arrived; here it is
    counted and skipped, so a rebuild never stops on it.
    """
    def tagged(index: int, stream: str) -> Iterator[tuple[int, int, int, str, Record]]:
        directory = wal_dir(wal_root, stream)
        if not directory.exists():
            return
        end = until.get(stream) if until is not None else None
        for record in WalReader(directory).records(start_seq=after.get(stream, 0) + 1, end_seq=end):
            yield record.ts, index, record.seq, stream, record

    merged = heapq.merge(*(tagged(i, s) for i, s in enumerate(streams)), key=lambda item: item[:3])
    for ts, _, seq, stream, record in merged:
        if wanted is not None and not wanted(record.subject):
            continue
        try:
            event = decode_for_subject(record.subject, record.payload)
        except EventDecodeError:
            UNDECODABLE.labels(source, "history").inc()
            continue
        yield Envelope(completed(event, ts), stream, seq, record.subject, ts, live=False)


class HistoryGone(RuntimeError):
    """The broker no longer holds messages a processor needs, and no WAL here has them either."""

    def __init__(self, stream: str, needed_from: int, first_held: int, source: str) -> None:
        super().__init__(
            f"{source} needs {stream} from sequence {needed_from}, but the broker keeps it only from {first_held} "
            f"(its max_age/max_bytes limits discarded the rest) and no WAL under --data-dir holds them. Run it "
            f"with --data-dir pointing at the recorder's data directory (the WAL is DATA_DIR/wal/{stream}), or "
            f"restore the WAL first: `sq store restore BACKUP DATA_DIR/wal` (then `sq replay --republish` "
            f"if the broker's streams were lost too).")
        self.stream = stream
        self.needed_from = needed_from
        self.first_held = first_held


class LiveFeed:
    """Ordered push consumers, one per stream, starting after given sequences, merged into one queue.

    What JetStream already holds beyond `after` when the feed starts (the recorder's lag, or
    everything when the WAL is elsewhere) is read first and merged by broker time like WAL history,
    so a processor starting behind sees market data and orders in the order they were stored.
    Events arriving afterwards are taken by stream priority (the order of `streams`; the order path
    first): within a stream in order, across streams the order path ahead of market data waiting
    beside it, so under a market-data flood an intent waits for at most one batch in each process.
    """

    def __init__(self, bus: Bus, streams: Sequence[str], after: Mapping[str, int], *, source: str,
                 wanted: SubjectFilter | None = None, queue_size: int = 2_048,
                 filter_subjects: Mapping[str, Sequence[str]] | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self.bus = bus
        # Once `stop` is set, `get` raises Stopped: one watcher task for the feed's life wakes a waiting
        # `get`, rather than a task and a wait on two futures for every batch.
        self._stop = stop
        self._watcher: asyncio.Task[None] | None = None
        # With `filter_subjects` (the patterns a core reads, per stream), the server delivers only
        # those; a stream with none is not consumed at all.
        self.filter_subjects = filter_subjects
        self.streams = [s for s in streams if filter_subjects is None or filter_subjects.get(s)]
        self.after = dict(after)
        self.source = source
        self.wanted = wanted
        # One queue per stream, taken in the order of `streams` (the order path first): a backlog of
        # market data never stands in front of an intent, and a full market-data queue (the server's
        # flow control then slows that consumer) never blocks delivery of the other stream.
        # A few batches' worth each: while the core is busy (a checkpoint, a rebuild) the server holds
        # the rest, not this process's memory as decoded events.
        self._queues: dict[str, asyncio.Queue[Envelope]] = {s: asyncio.Queue(queue_size) for s in self.streams}
        self._arrived = asyncio.Event()
        # Per stream, what the server still held for this consumer after the last message delivered:
        # with the queues full the rest of a lag waits there, and lag() counts it.
        self._held: dict[str, int] = dict.fromkeys(self.streams, 0)
        self._backlog: deque[Envelope] = deque()
        self._subscriptions: list[object] = []
        self.received_kinds: set[str] = set()      # `sq.<area>.<kind>` of every subject delivered
        self._unyielded = 0                         # messages taken since the callbacks last turned the loop

    def _config(self, stream: str, start: int) -> ConsumerConfig:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        if self.filter_subjects is not None:
            config.filter_subjects = list(self.filter_subjects[stream])
        return config

    async def start(self) -> None:
        """Read and merge the backlog, then create the live consumers; delivery begins at once."""
        await self._read_backlog()
        if self._stop is not None:
            self._watcher = asyncio.create_task(self._wake_on_stop(self._stop))
        for stream in self.streams:
            # Market data on a connection of its own: an order is never read after a socket's worth of it.
            js = await self.bus.market_data_js() if stream == STREAM_MD.name else self.bus.js
            subscription = await js.subscribe(
                "", stream=stream, ordered_consumer=True, config=self._config(stream, self.after.get(stream, 0) + 1),
                cb=self._on_message, idle_heartbeat=2.0, flow_control=True)
            self._subscriptions.append(subscription)

    async def _read_backlog(self) -> None:
        tagged: list[tuple[int, int, int, Envelope]] = []
        for index, stream in enumerate(self.streams):
            held = (await self.bus.js.stream_info(stream)).state
            end = held.last_seq
            start = self.after.get(stream, 0) + 1
            if end < start:
                continue
            if held.first_seq > start:
                raise HistoryGone(stream, start, held.first_seq, self.source)
            subscription = await self.bus.js.subscribe("", stream=stream, ordered_consumer=True,
                                                       config=self._config(stream, start))
            try:
                seq = start - 1
                info = await subscription.consumer_info()
                # Filtered, the last message delivered may come before `end`: stop when the server
                # says nothing more is pending (or at once when nothing matched at all).
                pending = (info.num_pending or 0) + (info.delivered.consumer_seq if info.delivered else 0)
                while seq < end and pending:
                    msg = await subscription.next_msg(timeout=10)
                    envelope = await self._envelope(msg)
                    delivery = parse_ack_subject(msg.subject, msg.reply)
                    seq, pending = delivery.stream_seq, delivery.pending
                    if envelope is not None:
                        tagged.append((envelope.stored_ts, index, envelope.seq, envelope))
            finally:
                await subscription.unsubscribe()
            self.after[stream] = max(end, seq)
        tagged.sort(key=lambda item: item[:3])
        self._backlog.extend(item[3] for item in tagged)
        self._held = dict.fromkeys(self.streams, 0)     # what follows is the live consumers' to say

    async def _envelope(self, msg: Msg) -> Envelope | None:
        """The message as an envelope, or None when unwanted or invalid (then dead-lettered)."""
        delivery = parse_ack_subject(msg.subject, msg.reply)
        self._held[delivery.stream] = delivery.pending
        self.received_kinds.add(".".join(msg.subject.split(".", 3)[:3]))
        if self.wanted is not None and not self.wanted(msg.subject):
            return None
        try:
            event = decode_for_subject(msg.subject, msg.data)
        except EventDecodeError as exc:
            UNDECODABLE.labels(self.source, "live").inc()
            await dead_letter(self.bus, self.source, msg.subject, msg.data, delivery, exc.reason)
            return None
        return Envelope(completed(event, delivery.timestamp_ns), delivery.stream, delivery.stream_seq, msg.subject,
                        delivery.timestamp_ns, live=True)

    async def _on_message(self, msg: Msg) -> None:
        envelope = await self._envelope(msg)
        if envelope is not None:
            # Blocks when the processor falls behind: the server's flow control then slows delivery.
            await self._queues[envelope.stream].put(envelope)
            self._arrived.set()
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            # nats-py hands a whole socket read to this callback message by message without turning the
            # loop: under a market-data flood, a thousand decodes while an intent waits unread on the
            # order path's connection.
            self._unyielded = 0
            await asyncio.sleep(0)

    async def _wake_on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._arrived.set()

    async def stop(self) -> None:
        """Stop delivery."""
        if self._watcher is not None:
            self._watcher.cancel()
        for subscription in self._subscriptions:
            await subscription.unsubscribe()  # type: ignore[attr-defined]
        self._subscriptions.clear()

    async def get(self, timeout: float | None = None) -> Envelope:
        """The next event, backlog first, then by stream priority, waiting for one at most `timeout` s
        (TimeoutError); Stopped once the feed's stop event is set, even with events waiting. Safe to
        cancel: nothing is taken before the wait ends."""
        async with asyncio.timeout(timeout):
            while True:
                if self._stop is not None and self._stop.is_set():
                    raise Stopped
                batch = self.drain(1)
                if batch:
                    return batch[0]
                self._arrived.clear()
                if any(not queue.empty() for queue in self._queues.values()):
                    continue        # arrived between the drain and the clear
                await self._arrived.wait()

    def drain(self, limit: int) -> list[Envelope]:
        """Up to `limit` envelopes already waiting, without blocking (to batch live work): the backlog,
        then each stream's queue in priority order."""
        batch: list[Envelope] = []
        while len(batch) < limit and self._backlog:
            batch.append(self._backlog.popleft())
        for queue in self._queues.values():
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
        return batch

    def lag(self) -> int:
        """Events stored for the processor but not yet taken by it: received and queued, or still held by the server."""
        return len(self._backlog) + sum(queue.qsize() for queue in self._queues.values()) + sum(self._held.values())
