"""The recorder: JetStream → WAL, one log per stream, each record keyed by its stream sequence.

On start it opens each stream's WAL (recovering a torn tail), reads the last sequence there and
consumes from the next one with an ordered consumer: no consumer state on the server is trusted,
so every message is recorded exactly once whatever happened before. Messages that arrive within a
few milliseconds of each other share one write and one fdatasync (group commit); after each, the
durable watermark `{"stream", "seq"}` is published on `sq.wal.watermark.<stream>` so producers
(the gateway) can acknowledge only what is durable (ARCHITECTURE.md, principle 5).

`sq processor recorder` runs it as a service (processors/recorder/runner.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram

from events.bus import Bus
from events.consumer import parse_ack_subject
from events.stopping import Stopped, unless_stopped
from events.subjects import WATERMARK_PREFIX
from store.follow import wal_dir
from store.writer import Entry, WalWriter

log = logging.getLogger(__name__)

RECORDED = Counter("sq_recorder_records_total", "Messages made durable in the WAL", ["stream"])
LAG = Gauge("sq_recorder_lag_events", "Stream last sequence minus WAL durable sequence", ["stream"])
DURABLE_SEQ = Gauge("sq_recorder_durable_seq", "Last stream sequence durable in the WAL", ["stream"])
COMMIT_SECONDS = Histogram("sq_wal_group_commit_seconds", "Write + fdatasync time of one group commit",
                           ["stream"], buckets=(1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
HEADROOM = Gauge("sq_recorder_retention_headroom_ratio",
                 "How far the oldest unrecorded message is from the stream's max_age/max_bytes (1: nothing at risk, "
                 "0: the broker discards it next)", ["stream"])
DISCARDED_UNRECORDED = Gauge("sq_recorder_discarded_unrecorded", "Messages the broker discarded before the WAL had "
                             "them (never expected: data lost)", ["stream"])
GAPS = Counter("sq_recorder_gap_messages_total", "Stream sequences the recorder never received: discarded by the "
               "broker's limits (or deleted) before it read them; the WAL lacks them", ["stream"])
AT_RISK_BELOW = 0.5          # headroom under which /readyz says the WAL is at risk
DEFAULT_SEAL_EVERY_S = 600.0


class StreamResetError(RuntimeError):
    """The broker's stream is behind the WAL: its storage was lost and must be restored from the WAL."""

    def __init__(self, stream: str, stream_last: int, wal_last: int) -> None:
        super().__init__(f"stream {stream} ends at sequence {stream_last} but the WAL already holds {wal_last}: "
                         f"the broker's storage was lost; restore it with `sq replay --republish` first")
        self.stream = stream
        self.stream_last = stream_last
        self.wal_last = wal_last


@dataclass(frozen=True)
class Retention:
    """How close the broker's limits are to discarding what the WAL does not hold yet."""

    headroom: float              # 1 - the larger of (unrecorded bytes / max_bytes, oldest unrecorded age / max_age)
    discarded_unrecorded: int    # messages already gone from the stream but never recorded


def retention(*, first_seq: int, last_seq: int, messages: int, stream_bytes: int, max_bytes: int, max_age_s: float,
              durable_seq: int, durable_ts: int, now_ns: int) -> Retention:
    """The recorder's margin against the stream's limits (0 or less for a limit means none)."""
    discarded = max(0, min(first_seq - 1, last_seq) - durable_seq)
    unrecorded = max(0, last_seq - max(durable_seq, first_seq - 1))
    if unrecorded == 0:
        return Retention(1.0 if discarded == 0 else 0.0, discarded)
    used = 0.0
    if max_bytes > 0 and messages:
        used = max(used, stream_bytes * min(1.0, unrecorded / messages) / max_bytes)
    if max_age_s > 0 and durable_ts:
        used = max(used, (now_ns - durable_ts) / 1e9 / max_age_s)
    return Retention(max(0.0, 1.0 - used) if discarded == 0 else 0.0, discarded)


class _TypeTag(msgspec.Struct):
    """Just the event's type tag, read without decoding the rest."""

    type: str = ""


_type_decoder = msgspec.json.Decoder(_TypeTag)


def event_type_of(payload: bytes) -> str:
    """The JSON `type` tag of a payload, or "" when absent or not JSON (garbage is recorded too)."""
    try:
        return _type_decoder.decode(payload).type
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


class StreamRecorder:
    """Records one JetStream stream into its WAL until stopped."""

    def __init__(self, bus: Bus, stream: str, wal_root: Path, *, max_batch: int = 4096,
                 gather_s: float = 0.002, seal_every_s: float = DEFAULT_SEAL_EVERY_S) -> None:
        self.bus = bus
        self.stream = stream
        self.directory = wal_dir(wal_root, stream)
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.seal_every_s = seal_every_s
        self._queue: asyncio.Queue[Msg] = asyncio.Queue(max_batch * 4)
        self.writer: WalWriter | None = None
        self._last_seal = time.monotonic()
        self._durable_ts = 0
        self._expected_seq = 0          # the next stream sequence, to notice what never arrived
        self.missed = 0                 # sequences that never arrived since this recorder started
        self.retention = Retention(1.0, 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Open the WAL, subscribe after its last sequence, and commit batches until `stop`."""
        self.writer = await asyncio.to_thread(WalWriter.open, self.directory, contiguous=False)
        wal_last = self.writer.last_seq or 0
        info = await self.bus.js.stream_info(self.stream)
        if info.state.last_seq < wal_last:
            raise StreamResetError(self.stream, info.state.last_seq, wal_last)
        if info.state.first_seq > wal_last + 1 and info.state.messages:
            log.warning("stream no longer holds the messages after the WAL's end; the WAL will have a gap",
                        extra={"stream": self.stream, "wal_last": wal_last, "stream_first": info.state.first_seq})
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=wal_last + 1)
        subscription = await self.bus.js.subscribe("", stream=self.stream, ordered_consumer=True, config=config,
                                                   cb=self._queue.put, idle_heartbeat=2.0, flow_control=True)
        DURABLE_SEQ.labels(self.stream).set(wal_last)
        self._expected_seq = wal_last + 1
        log.info("recording", extra={"stream": self.stream, "from_seq": wal_last + 1, "wal": str(self.directory)})
        lag_task = asyncio.create_task(self._watch_lag(stop))
        try:
            while not stop.is_set():
                batch = await self._gather(stop)
                if batch:
                    await self._commit(batch)
        finally:
            lag_task.cancel()
            await subscription.unsubscribe()
            await asyncio.to_thread(self.writer.close)

    async def _gather(self, stop: asyncio.Event) -> list[Msg]:
        """The next group: wait for one message, give others `gather_s` to join it, then take all that came."""
        try:
            batch = [await unless_stopped(self._queue.get(), stop)]
        except Stopped:
            return []
        # One timer per group, not a timed get (a task and a timer) per message; and a group that always
        # gets its `gather_s` is larger under load, so the same messages take fewer fdatasyncs.
        if self._queue.qsize() < self.max_batch:
            await asyncio.sleep(self.gather_s)
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _commit(self, batch: list[Msg]) -> None:
        """One write and one fdatasync for the batch, then the watermark. A WAL error is fatal."""
        assert self.writer is not None
        entries = []
        for msg in batch:
            delivery = parse_ack_subject(msg.subject, msg.reply)
            if delivery.stream_seq > self._expected_seq:
                self._missed(self._expected_seq, delivery.stream_seq - 1)
            self._expected_seq = delivery.stream_seq + 1
            entries.append(Entry(msg.data, delivery.timestamp_ns, msg.subject, event_type_of(msg.data),
                                 delivery.stream_seq))
        started = time.perf_counter()
        await asyncio.to_thread(self.writer.append_batch, entries)
        COMMIT_SECONDS.labels(self.stream).observe(time.perf_counter() - started)
        last = entries[-1].seq
        assert last is not None
        self._durable_ts = entries[-1].ts
        RECORDED.labels(self.stream).inc(len(entries))
        DURABLE_SEQ.labels(self.stream).set(last)
        await self.bus.nc.publish(WATERMARK_PREFIX + self.stream,
                                  json.dumps({"stream": self.stream, "seq": last}).encode())
        if time.monotonic() - self._last_seal >= self.seal_every_s:
            # Backups copy sealed segments only: seal on a clock, not just at the size limit, so a
            # quiet site's history still reaches the backup within the interval.
            await asyncio.to_thread(self.writer.seal)
            self._last_seal = time.monotonic()

    def _missed(self, first: int, last: int) -> None:
        """Sequences the ordered consumer skipped: gone from the stream before they could be recorded."""
        self.missed += last - first + 1
        GAPS.labels(self.stream).inc(last - first + 1)
        log.error("the WAL misses stream sequences the broker no longer holds", extra={
            "stream": self.stream, "first_missing": first, "last_missing": last,
            "hint": "the stream's max_bytes/max_age is too small for the recorder's lag or a burst"})

    async def _watch_lag(self, stop: asyncio.Event) -> None:
        warned = False
        while not stop.is_set():
            info = await self.bus.js.stream_info(self.stream)
            durable = (self.writer.durable_seq if self.writer else None) or 0
            state, config = info.state, info.config
            LAG.labels(self.stream).set(max(0, state.last_seq - durable))
            self.retention = retention(first_seq=state.first_seq, last_seq=state.last_seq, messages=state.messages,
                                       stream_bytes=state.bytes, max_bytes=config.max_bytes or 0,
                                       max_age_s=config.max_age or 0, durable_seq=durable,
                                       durable_ts=self._durable_ts, now_ns=time.time_ns())
            HEADROOM.labels(self.stream).set(self.retention.headroom)
            DISCARDED_UNRECORDED.labels(self.stream).set(self.retention.discarded_unrecorded)
            at_risk = self.retention.headroom < AT_RISK_BELOW
            if at_risk and not warned:
                log.error("the broker may discard messages the WAL does not hold yet", extra={
                    "stream": self.stream, "headroom": self.retention.headroom, "lag": state.last_seq - durable,
                    "discarded_unrecorded": self.retention.discarded_unrecorded})
            warned = at_risk
            await asyncio.sleep(1.0)

    def problems(self) -> list[str]:
        """What /readyz reports: retention at risk, or history discarded before it was recorded."""
        if self.missed:
            return [f"{self.stream}: {self.missed} stream messages were discarded before the WAL recorded them "
                    f"(raise SQ_STREAM_MAX_BYTES / SQ_STREAM_MAX_AGE_S)"]
        if self.retention.discarded_unrecorded:
            return [f"{self.stream}: the broker discarded {self.retention.discarded_unrecorded} messages before the "
                    f"WAL recorded them (raise max_bytes/max_age; restore from the source if it can resend)"]
        if self.retention.headroom < AT_RISK_BELOW:
            return [f"{self.stream}: unrecorded messages are within {self.retention.headroom:.0%} of the stream's "
                    f"max_age/max_bytes limit; the recorder must catch up"]
        return []


async def record(bus: Bus, wal_root: Path, streams: list[str], stop: asyncio.Event, *,
                 seal_every_s: float = DEFAULT_SEAL_EVERY_S, recorders: list[StreamRecorder] | None = None) -> None:
    """Record every given stream until `stop`; the first fatal error stops them all.

    `recorders` (empty) receives the per-stream recorders, for probes that read their state."""
    made = [StreamRecorder(bus, stream, wal_root, seal_every_s=seal_every_s) for stream in streams]
    if recorders is not None:
        recorders.extend(made)
    recorders = made
    tasks = [asyncio.create_task(recorder.run(stop)) for recorder in recorders]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                log.error("recorder stopped on an error", extra={"error": repr(outcome)})
