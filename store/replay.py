"""Replay: read recorded history with filters into JSONL, Parquet or a callback; republish a wiped stream.

History lives at `WAL_ROOT/<STREAM>/`, one log per JetStream stream, where each record's
sequence is the stream sequence, its time the broker's storage time, and its payload the exact
message bytes (see store/recorder.py). Records of several streams are merged by (record time,
stream order, sequence), the order `store.follow.history` uses, so a replay sees what a
rebuild sees.

Filters are applied cheapest first: the time range and sequence order come from seals and
indexes, subject and type from each record's small header, and only then is a payload
decoded, and only as far as its `id` and `correlation_id`, for a correlation filter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from heapq import merge
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import msgspec

from store._progress import Progress
from store.reader import WalReader

ReplayFormat = Literal["jsonl", "parquet"]
REPUBLISH_ROLE = "republish"
_INTENT_PREFIXES = ("sq.ord.intent.", "sq.ord.cancel.")


class _Ids(msgspec.Struct):
    """Just enough of any event to route and filter it; every other field is skipped unparsed."""

    id: str | None = None
    correlation_id: str | None = None


_ids_decoder = msgspec.json.Decoder(_Ids)
_json = msgspec.json.Encoder()


def event_ids(payload: bytes | memoryview) -> tuple[str | None, str | None]:
    """(id, correlation_id) of a payload, or (None, None) when it is not a JSON object with string ids."""
    try:
        ids = _ids_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None
    return ids.id or None, ids.correlation_id


class ReplayRecord(NamedTuple):
    """One recorded message; `payload` is a zero-copy view of the exact bytes that were published."""

    stream: str
    seq: int
    ts: int
    subject: str
    type: str
    payload: memoryview

    def decode(self) -> Any:
        """The event, decoded as the live path decodes it (intents completed with a missing id or ts).

        Raises `events.codec.EventDecodeError` for a record that is not a valid event.
        """
        from events.codec import complete_intent, decode_for_subject
        from events.trading import CancelIntent, OrderIntent

        event = decode_for_subject(self.subject, self.payload)
        if isinstance(event, OrderIntent | CancelIntent):
            event = complete_intent(event, self.ts)
        return event


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which records a replay keeps: a half-open record-time range, a NATS subject pattern, types, a correlation id.

    `correlation_id` keeps every event whose `correlation_id` is it *and* the event whose `id`
    is it (the parent order intent itself), so one filter yields an order's whole history.
    """

    start_ts: int | None = None
    end_ts: int | None = None
    subject: str | None = None
    types: frozenset[str] | None = None
    correlation_id: str | None = None

    def matches_correlation(self, record: ReplayRecord) -> bool:
        """True when the record belongs to the filter's correlation id (always true without one)."""
        wanted = self.correlation_id
        if wanted is None:
            return True
        payload = bytes(record.payload)
        # Cheap screen: the id must appear in the bytes, except for an intent whose id is derived
        # from its account and client order id because its publisher left it out.
        if wanted.encode() not in payload and not record.subject.startswith(_INTENT_PREFIXES):
            return False
        event_id, correlation = event_ids(payload)
        if correlation == wanted or event_id == wanted:
            return True
        if event_id is None and record.subject.startswith(_INTENT_PREFIXES):
            try:
                event = record.decode()
            except ValueError:
                return False
            return bool(event.id == wanted or event.correlation_id == wanted)
        return False


def recorded_streams(wal_root: Path) -> list[str]:
    """The streams that have a log under `wal_root`, by name."""
    if not wal_root.is_dir():
        return []
    return sorted(path.name for path in wal_root.iterdir() if path.is_dir() and any(path.glob("*.wal")))


def replay(wal_root: Path | str, *, streams: Sequence[str] | None = None,
           where: ReplayFilter = ReplayFilter()) -> Iterator[ReplayRecord]:
    """Matching records of the given streams (default: every recorded one), merged by (time, stream, seq)."""
    root = Path(wal_root)
    names = list(streams) if streams else recorded_streams(root)
    for name in names:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"no WAL for stream {name} under {root}")

    def one(position: int, name: str) -> Iterator[tuple[int, int, int, ReplayRecord]]:
        reader = WalReader(root / name, persist_index=False)
        for record in reader.records(start_ts=where.start_ts, end_ts=where.end_ts, types=where.types,
                                     subject=where.subject):
            item = ReplayRecord(name, record.seq, record.ts, record.subject, record.type, record.payload)
            if where.correlation_id is None or where.matches_correlation(item):
                yield record.ts, position, record.seq, item

    if len(names) == 1:
        for *_key, item in one(0, names[0]):
            yield item
        return
    for *_key, item in merge(*(one(position, name) for position, name in enumerate(names)),
                             key=lambda entry: entry[:3]):
        yield item


def drive(records: Iterable[ReplayRecord], callback: Callable[[ReplayRecord], object], *,
          progress: Progress | None = None) -> int:
    """Call `callback` with each record in order (the rebuild path); return how many were delivered.

    The record's payload view is only valid during the call: copy it (`bytes(...)`) to keep it.
    """
    count = 0
    for record in records:
        callback(record)
        count += 1
        if progress is not None:
            progress.add(1, len(record.payload))
    return count


# -- JSON lines ----------------------------------------------------------------------------------


def jsonl_line(record: ReplayRecord) -> bytes:
    """One JSON line: stream, seq, ts, subject, type and the event as JSON (or `raw` text if it is not JSON)."""
    line: dict[str, object] = {"stream": record.stream, "seq": record.seq, "ts": record.ts,
                               "subject": record.subject, "type": record.type}
    try:
        # format(indent=0) both validates and puts a pretty-printed payload on one line.
        line["event"] = msgspec.Raw(msgspec.json.format(record.payload, indent=0))
    except msgspec.DecodeError:
        line["event"] = None
        line["raw"] = bytes(record.payload).decode("utf-8", "backslashreplace")
    return _json.encode(line) + b"\n"


def write_jsonl(records: Iterable[ReplayRecord], out: IO[bytes], *, progress: Progress | None = None) -> int:
    """Write records as JSON lines; return how many."""
    count = 0
    for record in records:
        out.write(jsonl_line(record))
        count += 1
        if progress is not None:
            progress.add(1, len(record.payload))
    out.flush()
    return count


# -- Parquet ---------------------------------------------------------------------------------------

PARQUET_BATCH_ROWS = 65_536


def replay_schema() -> Any:
    """The Parquet schema of `sq replay --format parquet`."""
    import pyarrow as pa

    return pa.schema([("stream", pa.string()), ("seq", pa.uint64()), ("ts", pa.int64()), ("subject", pa.string()),
                      ("type", pa.string()), ("payload", pa.binary()), ("correlation_id", pa.string())])


def write_parquet(records: Iterable[ReplayRecord], out: str | Path | IO[bytes], *,
                  progress: Progress | None = None) -> int:
    """Write records to one Parquet file (zstd) in row groups of up to 64 Ki rows; return how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = replay_schema()
    columns: list[list[Any]] = [[] for _ in schema]
    count = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        def flush() -> None:
            writer.write_batch(pa.record_batch([pa.array(values, type=field.type)
                                                for values, field in zip(columns, schema, strict=True)],
                                               schema=schema))
            for values in columns:
                values.clear()

        for record in records:
            payload = bytes(record.payload)
            row = (record.stream, record.seq, record.ts, record.subject, record.type, payload, event_ids(payload)[1])
            for values, value in zip(columns, row, strict=True):
                values.append(value)
            count += 1
            if progress is not None:
                progress.add(1, len(payload))
            if len(columns[0]) >= PARQUET_BATCH_ROWS:
                flush()
        if columns[0] or count == 0:
            flush()
    return count


# -- republish ---------------------------------------------------------------------------------------


class RepublishError(RuntimeError):
    """The target stream cannot be restored from this WAL as it is; `stream` and `reason` say why."""

    def __init__(self, stream: str, reason: str) -> None:
        super().__init__(f"cannot republish {stream}: {reason}")
        self.stream = stream
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RepublishReport:
    """What a republish did.

    `aligned` is true when every republished message got the stream sequence it had when it
    was recorded: the existing WAL directory then stays valid for the recorder. When false
    (the recorded history had gaps from deleted or purged messages, or held one event id
    twice), the restored stream numbers its messages differently: move the stream's WAL
    directory aside before starting the recorder, which then records the restored stream
    afresh; replays of the old history read the moved directory.
    """

    stream: str
    published: int
    duplicates: int
    resumed_after: int
    first_seq: int | None
    last_seq: int | None
    stream_last_seq: int
    aligned: bool
    first_misaligned: int | None


def msg_id_for(stream: str, seq: int, payload: bytes | memoryview) -> str:
    """The Nats-Msg-Id to republish a record under: the event's id, else one derived from stream and sequence."""
    from events.ids import derived_id

    return event_ids(payload)[0] or derived_id(f"{stream}:{seq}", REPUBLISH_ROLE)


async def republish(wal_root: Path | str, stream: str, bus: Any, *, batch_size: int = 1000,
                    progress: Progress | None = None) -> RepublishReport:
    """Restore a wiped JetStream stream from its WAL: every record's exact payload on its subject, in order.

    Sequences: an empty stream is first positioned so that its next sequence is the WAL's first
    (an empty stream is purged up to it, or recreated with `first_seq` when it is already past
    it), so a contiguous history gets back exactly its recorded sequences. A stream that
    already holds messages is accepted only when it is a prefix of the WAL (an interrupted
    republish): its last message must equal the record with the same sequence, and the
    republish resumes after it. Anything else is refused with RepublishError.
    """
    from events.bus import Outgoing

    reader = WalReader(Path(wal_root) / stream, persist_index=False)
    first = next(iter(reader.records()), None)
    if first is None:
        raise RepublishError(stream, f"the WAL at {reader.directory} holds no records")
    first_seq = first.seq
    first.payload.release()
    resume_after = await _prepare_stream(bus, stream, first_seq, reader)

    published = duplicates = 0
    first_misaligned: int | None = None
    last_seq: int | None = None
    pending: list[tuple[int, Any]] = []

    async def flush() -> None:
        nonlocal published, duplicates, first_misaligned
        acks = await bus.publish_batch_encoded([item for _, item in pending])
        for (seq, _), ack in zip(pending, acks, strict=True):
            if ack.duplicate:
                duplicates += 1
            if (ack.duplicate or ack.seq != seq) and first_misaligned is None:
                first_misaligned = seq
        published += len(pending)
        if progress is not None:
            progress.add(len(pending), sum(len(item.payload) for _, item in pending))
        pending.clear()

    for record in reader.records(start_seq=resume_after + 1):
        payload = bytes(record.payload)
        record.payload.release()
        pending.append((record.seq, Outgoing(record.subject, payload, msg_id_for(stream, record.seq, payload))))
        last_seq = record.seq
        if len(pending) >= batch_size:
            await flush()
    if pending:
        await flush()
    info = await bus.js.stream_info(stream)
    return RepublishReport(stream, published, duplicates, resume_after, first_seq, last_seq, info.state.last_seq,
                           first_misaligned is None, first_misaligned)


async def _prepare_stream(bus: Any, stream: str, first_seq: int, reader: WalReader) -> int:
    """Create or position the stream; return the last sequence already restored (0 for none)."""
    import dataclasses

    import nats.js.errors

    from events.subjects import STREAMS

    try:
        info = await bus.js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        specs = [spec for spec in STREAMS if spec.name == stream]
        if not specs:
            raise RepublishError(stream, "no such stream on the broker, and it is not one of ShrivenQuant's") from None
        await bus.ensure_streams(specs)
        info = await bus.js.stream_info(stream)
    state = info.state
    if state.messages:
        return await _resume_point(bus, stream, state.last_seq, reader)
    next_seq = state.last_seq + 1
    if next_seq < first_seq:
        # Purging an empty stream up to a sequence moves its first sequence there.
        await bus.js.purge_stream(stream, seq=first_seq)
    elif next_seq > first_seq:
        config = dataclasses.replace(info.config, first_seq=first_seq)
        await bus.js.delete_stream(stream)
        await bus.js.add_stream(config)
    return 0


async def _resume_point(bus: Any, stream: str, last: int, reader: WalReader) -> int:
    """The stream's last sequence, if its last message is the WAL record with that sequence; else refuse."""
    record = next(iter(reader.records(start_seq=last, end_seq=last)), None)
    if record is None or record.seq != last:
        raise RepublishError(stream, f"the stream already holds messages up to sequence {last}, which is not in "
                                     "the WAL; republish only into an empty stream (or one an interrupted "
                                     "republish left behind)")
    from events.partitions import plain

    # Compared as published: a WAL recorded before the broker added bucket tokens holds the plain subject.
    expected = (plain(record.subject), bytes(record.payload))
    record.payload.release()
    message = await bus.js.get_msg(stream, last)
    if (plain(message.subject), message.data) != expected:
        raise RepublishError(stream, f"its message {last} differs from the WAL record {last}; republish only "
                                     "into an empty stream")
    return last


def run_republish(wal_root: Path, stream: str, nats_url: str | None, *, progress: Progress | None = None,
                  batch_size: int = 1000) -> RepublishReport:
    """Connect, republish, disconnect (for the command line)."""
    from events.bus import Bus

    async def main() -> RepublishReport:
        bus = await Bus.connect(nats_url, name="sq-replay-republish")
        try:
            return await republish(wal_root, stream, bus, batch_size=batch_size, progress=progress)
        finally:
            await bus.close()

    return asyncio.run(main())

__all__ = [
    "ReplayFilter", "ReplayFormat", "ReplayRecord", "RepublishError", "RepublishReport", "drive", "event_ids",
    "jsonl_line", "msg_id_for", "recorded_streams", "replay", "replay_schema", "republish", "run_republish",
    "write_jsonl", "write_parquet",
]
