"""The bus: a thin nats-py JetStream wrapper for streams, deduplicated publishing and batch publishing."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, KeyValueConfig, PubAck, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import Counter

from events._base import Event
from events.codec import encode
from events.subjects import STREAMS, StreamSpec, subject_for

log = logging.getLogger(__name__)

DEFAULT_URL_ENV = "SQ_NATS_URL"
MSG_ID_HEADER = "Nats-Msg-Id"

# How long a publish keeps retrying transient failures: longer than a JetStream leader election.
RETRY_BUDGET_S = 30.0


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (0.1, 0.2, 0.4 … capped at 2)."""
    return float(min(2.0, 0.1 * 2 ** (attempt - 1)))


PUBLISHED = Counter("sq_bus_published_total", "Events acknowledged by JetStream", ["stream"])
PUBLISH_RETRIES = Counter("sq_bus_publish_retries_total", "Publishes retried with the same Nats-Msg-Id")


# Bounded broker storage (ARCHITECTURE.md, principle 10): the WAL keeps all history, the broker keeps
# enough for processors to catch up from their snapshots and for the recorder to fall behind for a
# while. The recorder alerts (sq_recorder_retention_headroom_ratio, /readyz) long before a limit
# could discard what it has not made durable.
DEFAULT_MAX_AGE_S = 7 * 86_400.0
DEFAULT_MAX_BYTES = 8 << 30


def _limit(name: str, raw: str, parse: type[int] | type[float]) -> int | float:
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name} {raw!r} must be a number (0: no limit)") from None
    if value < 0:
        raise ValueError(f"{name} {raw!r} must not be negative (0: no limit)")
    return value


@dataclass(frozen=True)
class StreamSettings:
    """How the streams are created: replicas (R3 on a cluster), dedupe window and retention limits (0: none)."""

    replicas: int = 1
    duplicate_window_s: float = 120.0
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls) -> StreamSettings:
        """Settings from $SQ_STREAM_REPLICAS (R3 on a 3-node cluster), $SQ_DUPLICATE_WINDOW_S,
        $SQ_STREAM_MAX_AGE_S and $SQ_STREAM_MAX_BYTES (per stream; 0 keeps everything)."""
        replicas = os.environ.get("SQ_STREAM_REPLICAS", "1")
        window = os.environ.get("SQ_DUPLICATE_WINDOW_S", "120")
        try:
            settings = cls(replicas=int(replicas), duplicate_window_s=float(window),
                           max_age_s=float(_limit("SQ_STREAM_MAX_AGE_S",
                                                  os.environ.get("SQ_STREAM_MAX_AGE_S", str(DEFAULT_MAX_AGE_S)),
                                                  float)),
                           max_bytes=int(_limit("SQ_STREAM_MAX_BYTES",
                                                os.environ.get("SQ_STREAM_MAX_BYTES", str(DEFAULT_MAX_BYTES)), int)))
        except ValueError as exc:
            raise ValueError(f"SQ_STREAM_REPLICAS {replicas!r} / SQ_DUPLICATE_WINDOW_S {window!r}: {exc}") from exc
        if not 1 <= settings.replicas <= 5:
            raise ValueError(f"SQ_STREAM_REPLICAS {replicas} must be within 1..5 (JetStream's limit)")
        if settings.max_age_s and settings.max_age_s < settings.duplicate_window_s:
            raise ValueError(f"SQ_STREAM_MAX_AGE_S {settings.max_age_s:g} must be at least the dedupe window "
                             f"({settings.duplicate_window_s:g} s)")
        return settings


class PublishError(RuntimeError):
    """Publishing gave up after retries; `subject` and `msg_id` say which event was not acknowledged."""

    def __init__(self, subject: str, msg_id: str, cause: BaseException) -> None:
        super().__init__(f"publish to {subject} (Nats-Msg-Id {msg_id}) not acknowledged: {cause!r}")
        self.subject = subject
        self.msg_id = msg_id


@dataclass(frozen=True)
class Outgoing:
    """Already-encoded bytes with the subject and dedupe id to publish them under."""

    subject: str
    payload: bytes
    msg_id: str


def outgoing(event: Event, subject: str | None = None) -> Outgoing:
    """Encode an event for publishing: its subject, JSON bytes and its id as Nats-Msg-Id."""
    return Outgoing(subject or subject_for(event), encode(event), event.id)


def resolve_url(url: str | None) -> str:
    """The broker URL: the explicit one, else $SQ_NATS_URL, else the local default."""
    return url or os.environ.get(DEFAULT_URL_ENV) or "nats://127.0.0.1:4222"


class Bus:
    """A connection to NATS with JetStream, publishing events with dedupe ids."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, settings: StreamSettings) -> None:
        self.nc = nc
        self.js = js
        self.settings = settings
        self._open_second: Callable[[], Awaitable[NatsClient]] | None = None
        self._market_nc: NatsClient | None = None

    @classmethod
    async def connect(cls, url: str | None = None, *, name: str = "sq",
                      settings: StreamSettings | None = None, max_pending_acks: int = 4000) -> Bus:
        """Connect with unlimited reconnects (a broker restart is survived, not fatal)."""

        async def on_error(exc: Exception) -> None:
            log.warning("nats error", extra={"error": repr(exc)})

        async def on_disconnect() -> None:
            log.warning("nats disconnected")

        async def on_reconnect() -> None:
            log.info("nats reconnected")

        async def connection(suffix: str = "") -> NatsClient:
            return await nats.connect(
                resolve_url(url).split(","), name=name + suffix, max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                connect_timeout=5, error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                # Outgoing data buffered while the broker is away: bounded so memory stays bounded.
                pending_size=64 * 1024 * 1024,
            )

        nc = await connection()
        bus = cls(nc, nc.jetstream(publish_async_max_pending=max_pending_acks), settings or StreamSettings.from_env())
        bus._open_second = lambda: connection(".md")
        return bus

    async def market_data_js(self) -> JetStreamContext:
        """JetStream on a second connection kept for market data (opened on first use, closed with the bus).

        One socket delivers in order: on a shared one, an order would wait behind every market
        data message the broker wrote before it. On its own, the order path is read as soon as it
        arrives and the host takes it first (store.follow.LiveFeed).
        """
        if self._open_second is None:
            return self.js          # a bus made from an existing connection has only that one
        if self._market_nc is None:
            self._market_nc = await self._open_second()
        return self._market_nc.jetstream()

    async def close(self) -> None:
        """Flush what is buffered and close the connections."""
        for nc in (self._market_nc, self.nc):
            if nc is None or nc.is_closed:
                continue
            try:
                await nc.drain()
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                    nats.errors.FlushTimeoutError, OSError) as exc:
                # Reconnecting: the broker went first (stopped before us); nothing buffered can reach it.
                log.warning("drain on close failed", extra={"error": repr(exc)})
                await nc.close()

    async def ensure_streams(self, specs: Iterable[StreamSpec] = STREAMS) -> None:
        """Create each stream, or update it to the wanted config; safe to call from every process."""
        for spec in specs:
            config = StreamConfig(
                name=spec.name, subjects=list(spec.subjects), storage=StorageType.FILE,
                num_replicas=self.settings.replicas, duplicate_window=self.settings.duplicate_window_s,
                max_age=self.settings.max_age_s or 0, max_bytes=self.settings.max_bytes or -1,
                discard=DiscardPolicy.OLD,
            )
            try:
                await self.js.stream_info(spec.name)
            except nats.js.errors.NotFoundError:
                try:
                    await self.js.add_stream(config)
                    continue
                except nats.js.errors.BadRequestError:
                    # Another process created it between our lookup and add: fall through to update.
                    pass
            await self.js.update_stream(config)

    async def key_value(self, bucket: str, *, max_age_s: float | None = None, history: int = 1,
                        description: str | None = None) -> KeyValue:
        """A key-value bucket, created on first use with the streams' replicas; per-key TTLs are allowed."""
        try:
            return await self.js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            pass
        # nats-py creates KV streams with allow_msg_ttl, so a value may carry its own Nats-TTL.
        config = KeyValueConfig(bucket=bucket, description=description, history=history, ttl=max_age_s,
                                storage=StorageType.FILE, replicas=self.settings.replicas)
        try:
            return await self.js.create_key_value(config)
        except nats.js.errors.BadRequestError:
            # Another process created it first (with its own view of the config): use that one.
            return await self.js.key_value(bucket)

    async def publish(self, event: Event, *, subject: str | None = None, timeout: float = 5.0,
                      budget_s: float = RETRY_BUDGET_S) -> PubAck:
        """Publish one event and wait for JetStream's ack; retried with the same id on a timeout."""
        return await self.publish_encoded(outgoing(event, subject), timeout=timeout, budget_s=budget_s)

    async def publish_encoded(self, item: Outgoing, *, timeout: float = 5.0, attempts: int | None = None,
                              budget_s: float = RETRY_BUDGET_S) -> PubAck:
        """Publish pre-encoded bytes; the same Nats-Msg-Id on every retry, so retries are deduplicated.

        Transient failures (no stream leader during an election, a reconnect, a timeout) are retried
        with backoff until `budget_s` has passed (or `attempts` tries, when given).
        """
        last: BaseException | None = None
        deadline = time.monotonic() + budget_s
        attempt = 0
        while attempt == 0 or ((attempts is None or attempt < attempts) and time.monotonic() < deadline):
            if attempt:
                PUBLISH_RETRIES.inc()
                await asyncio.sleep(_backoff(attempt))
            attempt += 1
            try:
                ack = await self.js.publish(item.subject, item.payload, timeout=timeout,
                                            headers={MSG_ID_HEADER: item.msg_id})
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
                    nats.errors.ConnectionReconnectingError, nats.js.errors.ServiceUnavailableError) as exc:
                last = exc
                continue
            PUBLISHED.labels(ack.stream).inc()
            return ack
        raise PublishError(item.subject, item.msg_id, last or TimeoutError())

    async def publish_batch(self, events: Sequence[Event], *, timeout: float = 10.0,
                            attempts: int | None = None) -> list[PubAck]:
        """Publish many events with acks in flight together; returns the acks in input order."""
        return await self.publish_batch_encoded([outgoing(event) for event in events],
                                                timeout=timeout, attempts=attempts)

    async def publish_batch_encoded(self, items: Sequence[Outgoing], *, timeout: float = 10.0,
                                    attempts: int | None = None,
                                    budget_s: float = RETRY_BUDGET_S) -> list[PubAck]:
        """Batch publish with a bound on the wait: unacknowledged items are republished with the same id.

        nats-py's publish_async futures have no timeout of their own, so each round waits at
        most `timeout`; whatever is not acknowledged by then (or failed) goes round again, with
        backoff, until `budget_s` has passed (or `attempts` rounds, when given).
        """
        acks: list[PubAck | None] = [None] * len(items)
        todo = list(range(len(items)))
        last: BaseException | None = None
        loop = asyncio.get_running_loop()
        budget_end = time.monotonic() + budget_s
        attempt = 0
        while todo and (attempt == 0 or ((attempts is None or attempt < attempts) and time.monotonic() < budget_end)):
            if attempt:
                PUBLISH_RETRIES.inc(len(todo))
                await asyncio.sleep(_backoff(attempt))
            attempt += 1
            futures: dict[int, asyncio.Future[PubAck]] = {}
            try:
                # One deadline pushed forward as acks free slots (an inactivity timeout): a
                # per-call wait_stall would cost a timer task for every message.
                async with asyncio.timeout(loop.time() + timeout) as deadline:
                    for count, index in enumerate(todo):
                        item = items[index]
                        futures[index] = await self.js.publish_async(
                            item.subject, item.payload, headers={MSG_ID_HEADER: item.msg_id})
                        if count % 256 == 0:
                            deadline.reschedule(loop.time() + timeout)
            except (TimeoutError, nats.errors.ConnectionReconnectingError,
                    nats.errors.OutboundBufferLimitError) as exc:
                last = exc
            pending: set[asyncio.Future[PubAck]] = set(futures.values())
            while pending:
                done, pending = await asyncio.wait(pending, timeout=timeout)
                if not done:
                    break
            retry = []
            per_stream: dict[str, int] = {}
            for index in todo:
                future = futures.get(index)
                if future is None or not future.done():
                    if future is not None:
                        future.cancel()
                    retry.append(index)
                elif future.exception() is not None:
                    last = future.exception()
                    retry.append(index)
                else:
                    ack = future.result()
                    acks[index] = ack
                    per_stream[ack.stream] = per_stream.get(ack.stream, 0) + 1
            for stream, count in per_stream.items():
                PUBLISHED.labels(stream).inc(count)
            todo = retry
        if todo:
            first = items[todo[0]]
            raise PublishError(first.subject, first.msg_id, last or TimeoutError(f"{len(todo)} unacknowledged"))
        return [ack for ack in acks if ack is not None]
