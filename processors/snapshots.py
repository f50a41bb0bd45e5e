"""Snapshots of a core's state with the stream positions it reflects, kept in JetStream's object store.

A restart loads the newest valid snapshot and folds in only the tail after its positions
(ARCHITECTURE.md, principle 10), so restart time stays flat as history grows. The snapshots live
in the broker (bucket `sq-snapshots`, replicated like the streams), so a pod without a WAL
volume restores as fast as one with a volume.

A snapshot is `MAGIC | header length | header (JSON) | body | SHA-256 of everything before`.
The header names the processor, its partition, the snapshot format, the core's state version,
the digest of the state the processor was configured with (`origin`: another config makes the
snapshot unusable, since the config is part of the state) and the positions. The body is the
state pickled and compressed; it is unpickled only after the hash and every header field check
out, and then only from classes of our own packages and a short list of standard ones.
A snapshot that fails any check is skipped with a log line and a counter: the processor never
starts on a bad one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import io
import logging
import pickle
import struct
import zlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
import nats.js.errors
import numpy as np
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore
from prometheus_client import Counter, Gauge

from events.bus import Bus

log = logging.getLogger(__name__)

BUCKET = "sq-snapshots"
FORMAT_VERSION = 1
MAGIC = b"SQSNAP\x00\x01"
KEEP = 2                            # slots per processor and partition: the newest and the one before
READ_TIMEOUT_S = 10.0               # one read of a slot (a snapshot is a few MB at most, local to the broker)
READ_ATTEMPTS = 3
_LENGTH = struct.Struct("<I")
_HASH_SIZE = 32

REJECTED = Counter("sq_snapshot_rejected_total", "Snapshots skipped at start, by reason", ["processor", "reason"])
WRITTEN = Counter("sq_snapshot_written_total", "Snapshots written", ["processor"])
SNAPSHOT_BYTES = Gauge("sq_snapshot_bytes", "Size of the newest snapshot written", ["processor"])
SNAPSHOT_AGE_EVENTS = Gauge("sq_snapshot_events_behind", "Events applied since the newest snapshot", ["processor"])


class SnapshotHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What a snapshot reflects: whose state, which version of it, and the stream positions folded in."""

    format: int
    processor: str
    partition: str
    state_version: int
    origin: str                      # state_digest of the state the processor started from (its config)
    positions: dict[str, int]        # last stream sequence folded in, per stream
    generation: int                  # increases with every snapshot of this processor and partition
    last_stored_ts: int              # broker time of the newest event folded in
    events: int                      # events folded in to reach this state (from the first record)


class InvalidSnapshot(ValueError):
    """A snapshot that must not be used; `reason` is a short label (for the counter), `detail` says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a usable snapshot must say of itself."""

    processor: str
    partition: str
    state_version: int
    origin: str


def encode_snapshot(header: SnapshotHeader, state: Any) -> bytes:
    """The snapshot's bytes: header, compressed pickled state, and a SHA-256 over both."""
    return seal(header, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def seal(header: SnapshotHeader, pickled: bytes) -> bytes:
    """Frame an already pickled state (pickled on the loop, framed in a thread)."""
    head = msgspec.json.encode(header)
    blob = MAGIC + _LENGTH.pack(len(head)) + head + zlib.compress(pickled, 1)
    return blob + hashlib.sha256(blob).digest()


def read_header(blob: bytes) -> SnapshotHeader:
    """The header of a snapshot whose hash checks out; raises InvalidSnapshot otherwise."""
    if len(blob) < len(MAGIC) + _LENGTH.size + _HASH_SIZE or not blob.startswith(MAGIC[:6]):
        raise InvalidSnapshot("not_a_snapshot", f"{len(blob)} bytes without the snapshot magic")
    if blob[6:8] != MAGIC[6:8]:
        raise InvalidSnapshot("format", f"framing {blob[6:8].hex()} is not {MAGIC[6:8].hex()}")
    body, digest = blob[:-_HASH_SIZE], blob[-_HASH_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise InvalidSnapshot("hash", "SHA-256 of the snapshot does not match its trailer")
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    try:
        return msgspec.json.decode(blob[start:start + length], type=SnapshotHeader)
    except msgspec.DecodeError as exc:
        raise InvalidSnapshot("header", str(exc)) from None


def decode_snapshot(blob: bytes, expected: Expected) -> tuple[SnapshotHeader, Any]:
    """The header and state of a snapshot that passes every check against `expected`."""
    header = read_header(blob)
    if header.format != FORMAT_VERSION:
        raise InvalidSnapshot("format", f"snapshot format {header.format}, this build reads {FORMAT_VERSION}")
    if (header.processor, header.partition) != (expected.processor, expected.partition):
        raise InvalidSnapshot("owner", f"snapshot of {header.processor} {header.partition}, "
                                       f"not {expected.processor} {expected.partition}")
    if header.state_version != expected.state_version:
        raise InvalidSnapshot("state_version", f"state version {header.state_version}, "
                                               f"this build's {expected.processor} core is {expected.state_version}")
    if header.origin != expected.origin:
        raise InvalidSnapshot("config", "taken under another configuration of the processor")
    start = len(MAGIC) + _LENGTH.size + _LENGTH.unpack_from(blob, len(MAGIC))[0]
    try:
        state = _RestrictedUnpickler(io.BytesIO(zlib.decompress(blob[start:-_HASH_SIZE]))).load()
    except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
        raise InvalidSnapshot("body", repr(exc)) from None
    return header, state


_ALLOWED_MODULES = ("events", "processors", "projections", "store", "numpy", "msgspec")
_ALLOWED_NAMES = {("builtins", n) for n in ("set", "frozenset", "dict", "list", "tuple", "bytearray", "slice",
                                           "object", "complex", "bytes", "int", "float", "str", "bool")} | {
    ("collections", "deque"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("decimal", "Decimal"), ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
    ("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta"), ("datetime", "date"),
    ("uuid", "UUID"), ("fractions", "Fraction")}


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only our own types and a few standard ones: a snapshot is data, never code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_NAMES or module.split(".", 1)[0] in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"snapshot refers to {module}.{name}, which a state never holds")


def state_digest(state: Any) -> str:
    """A SHA-256 of the state's content, independent of dict and set order: equal states, equal digests."""
    return hashlib.sha256(_canonical(state)).hexdigest()


def _canonical(obj: Any) -> bytes:
    """Canonical bytes of a state value (type-tagged; dicts and sets sorted)."""
    if obj is None or isinstance(obj, bool | int | float | str | bytes):
        return repr(obj).encode()
    if isinstance(obj, Decimal):
        return b"D" + str(obj).encode()
    if isinstance(obj, enum.Enum):
        return f"E{type(obj).__name__}.{obj.name}".encode()
    if isinstance(obj, Mapping):
        items = sorted(_canonical(k) + b":" + _canonical(v) for k, v in obj.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(obj, set | frozenset):
        return b"S{" + b",".join(sorted(_canonical(v) for v in obj)) + b"}"
    if isinstance(obj, list | tuple) or type(obj).__name__ == "deque":
        return b"[" + b",".join(_canonical(v) for v in obj) + b"]"
    if isinstance(obj, np.ndarray):
        return f"A{obj.dtype.str}{obj.shape}".encode() + np.ascontiguousarray(obj).tobytes()
    if isinstance(obj, np.generic):
        return repr(obj.item()).encode()
    return type(obj).__qualname__.encode() + _canonical(_fields(obj))


def _fields(obj: Any) -> dict[str, Any]:
    """The attributes that make up an object's state."""
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, msgspec.Struct):
        return {name: getattr(obj, name) for name in obj.__struct_fields__}
    out: dict[str, Any] = {}
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                out[name] = getattr(obj, name)
    out.update(getattr(obj, "__dict__", {}))
    return out            # empty for singletons such as msgspec.UNSET: their type says it all


def object_name(processor: str, partition: str, slot: int) -> str:
    """Where one slot of a processor's snapshots lives in the bucket."""
    return f"{processor}/{partition.replace('/', 'of')}/{slot}"


class SnapshotStore:
    """The `sq-snapshots` bucket as one processor partition sees it: newest valid snapshot in, new ones out."""

    def __init__(self, bus: Bus, expected: Expected, *, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.bus = bus
        self.expected = expected
        self.read_timeout_s = read_timeout_s
        self._store: ObjectStore | None = None

    async def open(self) -> SnapshotStore:
        """Find the bucket, creating it (replicated like the streams) on first use."""
        try:
            self._store = await self.bus.js.object_store(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            config = ObjectStoreConfig(bucket=BUCKET, storage=StorageType.FILE,
                                       replicas=self.bus.settings.replicas,
                                       description="ShrivenQuant core snapshots (processors.snapshots)")
            try:
                self._store = await self.bus.js.create_object_store(BUCKET, config=config)
            except nats.js.errors.BadRequestError:
                self._store = await self.bus.js.object_store(BUCKET)   # created meanwhile by another process
        return self

    def _names(self) -> list[str]:
        return [object_name(self.expected.processor, self.expected.partition, slot) for slot in range(KEEP)]

    async def _read(self, name: str) -> bytes:
        """An object's bytes. nats-py reads the chunks of the version it looked up and waits for them without
        end, so one replaced meanwhile (another instance's snapshot, say) would hang it: each read is bounded,
        and a read that times out is tried again against the object's new version."""
        assert self._store is not None, "open() first"
        for attempt in range(READ_ATTEMPTS):
            buffer = io.BytesIO()
            try:
                await asyncio.wait_for(self._store.get(name, writeinto=buffer), self.read_timeout_s)
                return buffer.getvalue()
            except TimeoutError:
                log.warning("snapshot read timed out (replaced while read?)",
                            extra={"processor": self.expected.processor, "snapshot": name, "attempt": attempt + 1})
        raise InvalidSnapshot("object", f"not read within {self.read_timeout_s:g} s in {READ_ATTEMPTS} attempts")

    async def newest(self) -> tuple[SnapshotHeader, Any] | None:
        """The newest snapshot that passes every check, or None (each one skipped is logged and counted)."""
        assert self._store is not None, "open() first"
        best: tuple[SnapshotHeader, Any] | None = None
        for name in self._names():
            try:
                header, state = decode_snapshot(await self._read(name), self.expected)
            except nats.js.errors.NotFoundError:
                continue
            except (nats.js.errors.DigestMismatchError, nats.js.errors.BadObjectMetaError) as exc:
                self._reject(name, InvalidSnapshot("object", f"the object store refused it: {exc!r}"))
                continue
            except InvalidSnapshot as exc:
                self._reject(name, exc)
                continue
            if best is None or header.generation > best[0].generation:
                best = (header, state)
        return best

    def _reject(self, name: str, exc: InvalidSnapshot) -> None:
        REJECTED.labels(self.expected.processor, exc.reason).inc()
        log.warning("snapshot skipped", extra={"processor": self.expected.processor, "snapshot": name,
                                               "reason": exc.reason, "detail": exc.detail})

    async def save(self, header: SnapshotHeader, blob: bytes) -> None:
        """Write a framed snapshot into its slot (the other slot keeps the one before)."""
        assert self._store is not None, "open() first"
        name = object_name(self.expected.processor, self.expected.partition, header.generation % KEEP)
        await self._store.put(name, blob)
        WRITTEN.labels(self.expected.processor).inc()
        SNAPSHOT_BYTES.labels(self.expected.processor).set(len(blob))

    async def put_raw(self, slot: int, blob: bytes) -> None:
        """Write bytes into a slot as they are (fault tests and tools)."""
        assert self._store is not None, "open() first"
        await self._store.put(object_name(self.expected.processor, self.expected.partition, slot), blob)

    async def get_raw(self, slot: int) -> bytes | None:
        """The bytes in a slot, unchecked, or None when empty."""
        try:
            return await self._read(object_name(self.expected.processor, self.expected.partition, slot))
        except nats.js.errors.ObjectNotFoundError:
            return None


__all__ = ["BUCKET", "FORMAT_VERSION", "Expected", "InvalidSnapshot", "SnapshotHeader", "SnapshotStore",
           "decode_snapshot", "encode_snapshot", "read_header", "seal", "state_digest"]
