"""Durable pull consumers: explicit ack, bounded in-flight work, backoff, and dead letters instead of crash loops."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Histogram

from events._base import Event
from events.audit import DeadLetter
from events.bus import Bus, outgoing
from events.codec import AnyEvent, EventDecodeError, decode_for_subject
from events.ids import derived_id

log = logging.getLogger(__name__)

CONSUMED = Counter("sq_consumer_messages_total", "Messages handled by consumers, by outcome",
                   ["consumer", "outcome"])
HANDLE_SECONDS = Histogram("sq_consumer_handle_seconds", "Time spent in a consumer's handler", ["consumer"],
                           buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0))


# The server times a pull request's expiry from when it reads the request, which on a loaded machine can be
# well after the client sent it: a stopping runner waits this much longer before it lets go of the inbox.
PULL_EXPIRY_SLACK_S = 0.25


class TransientError(Exception):
    """Raised by a handler to ask for redelivery later (a dependency is briefly unavailable)."""


@dataclass(frozen=True)
class Delivery:
    """JetStream's facts about one delivered message, parsed from its ack subject."""

    subject: str
    stream: str
    stream_seq: int
    delivered: int
    timestamp_ns: int
    pending: int


def parse_ack_subject(subject: str, reply: str) -> Delivery:
    """Parse `$JS.ACK.[domain.account.]<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts_ns>.<pending>`.

    nats-py's `Msg.metadata` turns the time into a datetime (microseconds); the ack subject
    has nanoseconds, which is what event times are, so replays complete intents identically.
    """
    tokens = reply.split(".")
    offset = 2 if len(tokens) == 9 else 4
    return Delivery(subject=subject, stream=tokens[offset], stream_seq=int(tokens[offset + 3]),
                    delivered=int(tokens[offset + 2]), timestamp_ns=int(tokens[offset + 5]),
                    pending=int(tokens[offset + 6]))


Handler = Callable[[AnyEvent, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer: which stream and subjects, and how hard the server retries a message."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 5
    # Without max_deliver and backoff the server redelivers a poison message forever.
    backoff_s: tuple[float, ...] = (0.05, 0.25, 1.0, 5.0)
    ack_wait_s: float = 30.0
    batch: int = 256
    max_ack_pending: int = 4096
    fetch_timeout_s: float = 1.0
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    start_seq: int | None = None

    def config(self) -> ConsumerConfig:
        """The JetStream consumer config this spec stands for."""
        return ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver, backoff=list(self.backoff_s)[: self.max_deliver],
            filter_subjects=list(self.filter_subjects), max_ack_pending=self.max_ack_pending,
            deliver_policy=self.deliver_policy, opt_start_seq=self.start_seq,
        )


@dataclass
class ConsumerStats:
    """What a consumer has done since it started (the Prometheus counters hold the same across restarts)."""

    processed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    duplicates_skipped: int = 0
    last_stream_seq: int = 0
    fetch_timeouts: int = 0


@dataclass
class ConsumerRunner:
    """Fetch, decode, handle and ack, one message at a time in stream order; stop() ends it between batches."""

    bus: Bus
    spec: ConsumerSpec
    handler: Handler
    source: str
    decode: Callable[[str, bytes], AnyEvent] = decode_for_subject
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Stream sequences nak'd for redelivery: below last_stream_seq but not duplicates.
    _awaiting_retry: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Labelled children resolved once: a labels() lookup per message is measurable.
        name = self.spec.durable
        self._count = {outcome: CONSUMED.labels(name, outcome)
                       for outcome in ("processed", "duplicate", "retried", "dead_lettered")}
        self._timer = HANDLE_SECONDS.labels(name)

    def stop(self) -> None:
        """Finish the batch in hand, ack it, and return from run()."""
        self._stopping.set()

    async def wait_ready(self) -> None:
        """Wait until the consumer exists on the server and fetching has begun."""
        await self._ready.wait()

    async def run(self) -> ConsumerStats:
        """Consume until stop(); a bad message is dead-lettered, never a reason to crash."""
        js = self.bus.js
        # The server's consumer-create is create-or-update, so a restart with new limits updates the durable.
        await js.add_consumer(self.spec.stream, self.spec.config())
        subscription = await js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        self._ready.set()
        request_open_until = 0.0
        try:
            while not self._stopping.is_set():
                request_open_until = time.monotonic() + self.spec.fetch_timeout_s
                try:
                    messages = await subscription.fetch(self.spec.batch, timeout=self.spec.fetch_timeout_s)
                except TimeoutError:
                    # nats.errors.TimeoutError subclasses it, and nats-py's fetch may also raise the
                    # builtin asyncio one: both mean "nothing arrived in time".
                    self.stats.fetch_timeouts += 1
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as exc:
                    log.warning("fetch interrupted", extra={"consumer": self.spec.durable, "error": repr(exc)})
                    await asyncio.sleep(0.25)
                    continue
                for msg in messages:
                    await self._handle(msg)
                # Acks are fire-and-forget publishes: flush each batch's before fetching the next, so
                # the server's ack floor keeps up and a stop or crash redelivers as little as possible.
                await self.bus.nc.flush()
            await self._hand_back_unhandled(subscription, request_open_until)
        finally:
            await subscription.unsubscribe()
        return self.stats

    async def _hand_back_unhandled(self, subscription: JetStreamContext.PullSubscription, open_until: float) -> None:
        """Nak what the server sent this runner but it will not handle, so the next runner gets it now, in order."""
        # A fetch that returns at its deadline leaves its pull request open on the server until it expires.
        # Unsubscribing first sends the rest of that request nowhere, and unhandled messages left in the queue
        # would come back only after ack_wait, behind newer events: either way the next runner sees them late.
        await asyncio.sleep(max(0.0, open_until + PULL_EXPIRY_SLACK_S - time.monotonic()))
        queued = subscription._sub  # nats-py keeps the fetched-but-unreturned messages on its inner subscription
        for _ in range(subscription.pending_msgs):
            msg = await queued.next_msg(timeout=0.1)
            if not JetStreamContext.is_status_msg(msg):
                await msg.nak()
        await self.bus.nc.flush()

    async def _handle(self, msg: Msg) -> None:
        delivery = parse_ack_subject(msg.subject, msg.reply)
        if delivery.stream_seq <= self.stats.last_stream_seq and delivery.stream_seq not in self._awaiting_retry:
            # A redelivery of something this process already handled (its ack was lost).
            self.stats.duplicates_skipped += 1
            self._count["duplicate"].inc()
            await msg.ack()
            return
        try:
            event = self.decode(msg.subject, msg.data)
        except EventDecodeError as exc:
            await self._dead_letter(msg, delivery, exc.reason)
            return
        try:
            started = time.perf_counter()
            await self.handler(event, delivery)
            self._timer.observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any handler fault is retried, then dead-lettered
            await self._retry_or_dead_letter(msg, delivery, event, exc)
            return
        self.stats.processed += 1
        self._awaiting_retry.discard(delivery.stream_seq)
        self.stats.last_stream_seq = max(self.stats.last_stream_seq, delivery.stream_seq)
        self._count["processed"].inc()
        await msg.ack()

    async def _retry_or_dead_letter(self, msg: Msg, delivery: Delivery, event: Event, exc: Exception) -> None:
        transient = isinstance(exc, TransientError)
        log.log(logging.WARNING if transient else logging.ERROR, "handler failed",
                exc_info=not transient,
                extra={"consumer": self.spec.durable, "event_id": event.id, "event_type": type(event).__name__,
                       "stream_seq": delivery.stream_seq, "delivered": delivery.delivered, "error": repr(exc)})
        if delivery.delivered >= self.spec.max_deliver:
            await self._dead_letter(msg, delivery, f"handler failed {delivery.delivered} times: {exc!r}")
            return
        self.stats.retried += 1
        self._awaiting_retry.add(delivery.stream_seq)
        self._count["retried"].inc()
        backoff = self.spec.backoff_s
        await msg.nak(delay=backoff[min(delivery.delivered, len(backoff)) - 1])

    async def _dead_letter(self, msg: Msg, delivery: Delivery, reason: str) -> None:
        await dead_letter(self.bus, self.source, msg.subject, msg.data, delivery, reason)
        self.stats.dead_lettered += 1
        self._awaiting_retry.discard(delivery.stream_seq)
        self.stats.last_stream_seq = max(self.stats.last_stream_seq, delivery.stream_seq)
        self._count["dead_lettered"].inc()
        await msg.term()


async def dead_letter(bus: Bus, source: str, subject: str, data: bytes, delivery: Delivery, reason: str) -> DeadLetter:
    """Publish a DeadLetter for bytes that `source` refused; its id derives from the stream position."""
    encoding: Literal["utf-8", "base64"] = "utf-8"
    try:
        payload = data.decode("utf-8")
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(data).decode("ascii"), "base64"
    letter = DeadLetter(
        # Derived from the stream position, so a redelivered bad message dedupes to one letter.
        id=derived_id(f"{delivery.stream}:{delivery.stream_seq}", f"dlq:{source}"),
        ts=delivery.timestamp_ns, source=source, subject=subject, reason=reason,
        payload=payload, payload_encoding=encoding, stream_seq=delivery.stream_seq,
        delivered=delivery.delivered,
    )
    await bus.publish_encoded(outgoing(letter))
    log.warning("dead-lettered", extra={"source": source, "subject": subject,
                                        "stream_seq": delivery.stream_seq, "reason": reason})
    return letter

__all__ = ["ConsumerRunner", "ConsumerSpec", "ConsumerStats", "Delivery", "Handler", "TransientError",
           "dead_letter", "parse_ack_subject"]
