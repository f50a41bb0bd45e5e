"""The single writer of a log: group commit, segment roll, and fatal, sticky I/O errors."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from crc32c import crc32c

from store._batch import Columns, check_columns, frame, from_prepared
from store._files import DirectoryLock, Opener, SegmentFile, fsync_dir, open_os_file
from store._format import (
    HEADER_SIZE,
    INDEX_INTERVAL,
    INT64_MIN,
    MAX_RECORD_SIZE,
    MAX_SEGMENT_SIZE,
    MAX_SEQ,
    RECORD_HEADER_SIZE,
    SEAL_SIZE,
    ZERO_HASH,
    ScanResult,
    Seal,
    SegmentHeader,
    encode_seal,
    segment_name,
)
from store._segments import Layout, SegmentInfo, mapped
from store.errors import WalClosedError, WalFatalError, WalModeError, WalRecordError, WalSequenceError
from store.index import write_index
from store.recovery import RecoveryReport, recover

DEFAULT_SEGMENT_SIZE = 64 << 20
# seq, ts, subject+type bytes, subject length, type length, payload, schema, record length
_Prepared = tuple[int, int, bytes, int, int, "bytes | bytearray | memoryview", int, int]
_I64 = 1 << 63


class Entry(NamedTuple):
    """One record to append; `seq=None` takes the next sequence (last + 1)."""

    payload: bytes | bytearray | memoryview
    ts: int
    subject: str = ""
    type: str = ""
    seq: int | None = None
    schema: int = 1


class WriteTicket(NamedTuple):
    """A written, not yet durable batch: pass it to `WalWriter.sync`."""

    generation: int
    seqs: list[int]


@dataclass(slots=True)
class _Tail:
    """The open, unsealed segment and what the seal and the index will need to know about it."""

    path: Path
    file: SegmentFile
    header: SegmentHeader
    size: int
    durable_size: int
    hasher: hashlib._Hash
    body_crc: int
    count: int = 0
    first_seq: int = 0
    min_ts: int = 0
    max_ts: int = 0
    index: list[tuple[int, int, int]] = field(default_factory=list)
    offsets: array = field(default_factory=lambda: array("I"))
    next_mark: int = HEADER_SIZE
    max_before: int = INT64_MIN


class WalWriter:
    """Appends records durably to one log directory; the only writer of that directory."""

    def __init__(self, directory: Path, lock: DirectoryLock, layout: Layout, tail_scan: ScanResult | None,
                 recovery: RecoveryReport, *, contiguous: bool, segment_size: int, opener: Opener) -> None:
        self.directory = directory
        self.recovery = recovery
        self.contiguous = contiguous
        self._lock = lock
        self._opener = opener
        self._segment_size = segment_size
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fatal: WalFatalError | None = None
        self._closed = False
        self._names: dict[tuple[str, str], tuple[bytes, int, int]] = {}
        self._tail: _Tail | None = None
        self._prev_hash = ZERO_HASH
        self._last_seq: int | None = None
        sealed = [info for info in layout.segments if info.seal is not None]
        if sealed:
            self._prev_hash = sealed[-1].seal.chain_hash  # type: ignore[union-attr]
            self._last_seq = sealed[-1].seal.last_seq  # type: ignore[union-attr]
        if tail_scan is not None:
            self._tail = self._reopen_tail(layout.segments[-1], tail_scan)
            self._last_seq = tail_scan.last_seq
        self._durable_seq = self._last_seq
        self._written_gen = 0
        self._synced_gen = 0
        self._written: tuple[int, int | None, _Tail | None, int] = (0, self._last_seq, self._tail, 0)

    @classmethod
    def open(cls, directory: Path | str, *, contiguous: bool | None = None,
             segment_size: int = DEFAULT_SEGMENT_SIZE, opener: Opener | None = None) -> WalWriter:
        """Lock the directory, recover it after any crash, and return a writer positioned at its end.

        `contiguous=None` keeps the existing log's mode (strictly increasing for a new log).
        """
        limit = MAX_SEGMENT_SIZE - MAX_RECORD_SIZE - SEAL_SIZE
        if not HEADER_SIZE < segment_size <= limit:
            raise ValueError(f"segment_size {segment_size} outside {HEADER_SIZE + 1}..{limit}")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(path)
        try:
            report = RecoveryReport()
            layout, tail_scan = recover(path, report)
            found = layout.contiguous
            if contiguous is not None and found is not None and contiguous != found:
                raise WalModeError(path, requested=contiguous, found=found)
            mode = found if found is not None else bool(contiguous)
            return cls(path, lock, layout, tail_scan, report, contiguous=mode, segment_size=segment_size,
                       opener=opener or open_os_file)
        except BaseException:
            lock.release()
            raise

    @property
    def last_seq(self) -> int | None:
        """The last sequence written (durable or not yet)."""
        return self._last_seq

    @property
    def durable_seq(self) -> int | None:
        """The last sequence known durable: the watermark producers may be told about."""
        return self._durable_seq

    @property
    def fatal(self) -> WalFatalError | None:
        """The error that stopped this writer, if one did."""
        return self._fatal

    def append(self, payload: bytes | bytearray | memoryview, *, ts: int, subject: str = "", type: str = "",
               seq: int | None = None, schema: int = 1) -> int:
        """Append one record and return its sequence once it is durable."""
        return self.append_batch([Entry(payload, ts, subject, type, seq, schema)])[0]

    def append_batch(self, entries: Sequence[Entry]) -> list[int]:
        """Append records with one write and one fdatasync; return their sequences once durable."""
        ticket = self.write_batch(entries)
        self.sync(ticket)
        return ticket.seqs

    def write_batch(self, entries: Sequence[Entry]) -> WriteTicket:
        """Validate, encode and write a batch without syncing it (not acknowledged until `sync`)."""
        with self._write_lock:
            self._check_usable()
            if not entries:
                return WriteTicket(self._written_gen, [])
            columns = self._columns(entries)
            start = 0
            while start < len(columns):
                tail = self._tail
                if tail is None or (tail.size >= self._segment_size and tail.count):
                    self._roll(int(columns.seqs[start]))
                    tail = self._tail
                    assert tail is not None
                start = self._write_chunk(tail, columns, start)
            return WriteTicket(self._written_gen, columns.seqs.tolist())

    def sync(self, ticket: WriteTicket) -> None:
        """Return once the ticket's batch is durable; one fdatasync covers every batch written before it."""
        with self._sync_lock:
            self._sync_locked(ticket.generation)

    def _sync_locked(self, generation: int) -> None:
        """fdatasync the tail unless `generation` is already durable (sync lock held)."""
        if generation <= self._synced_gen:
            return
        if self._fatal is not None:
            raise self._fatal
        written_gen, last_seq, tail, size = self._written
        assert tail is not None
        try:
            tail.file.sync()
        except OSError as exc:
            raise self._stop("fdatasync", tail.path, exc) from exc
        self._synced_gen = written_gen
        self._durable_seq = last_seq
        tail.durable_size = max(tail.durable_size, size)

    def seal(self) -> Seal | None:
        """Seal the current segment now (the next append starts a new one); None if there is nothing to seal."""
        with self._write_lock:
            self._check_usable()
            if self._tail is None or not self._tail.count:
                return None
            with self._sync_lock:
                return self._seal_locked()

    def close(self) -> None:
        """Make what was written durable (unless stopped by an error), close the file, release the lock."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._tail is not None:
                    try:
                        if self._fatal is None:
                            self.sync(WriteTicket(self._written_gen, []))
                    finally:
                        self._tail.file.close()
            finally:
                self._lock.release()

    def __enter__(self) -> WalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        """Refuse to write after close or after a fatal error (the error is sticky)."""
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise WalClosedError(f"writer for {self.directory} is closed")

    def _stop(self, operation: str, path: Path, exc: OSError) -> WalFatalError:
        """Record a fatal I/O error; every later call raises it."""
        if self._fatal is None:
            self._fatal = WalFatalError(operation, path, exc, durable_seq=self._durable_seq)
        return self._fatal

    def _names_for(self, index: int, subject: str, type_name: str) -> tuple[bytes, int, int]:
        """Encoded subject+type bytes and their lengths, cached because a stream has few of each."""
        key = (subject, type_name)
        cached = self._names.get(key)
        if cached is not None:
            return cached
        try:
            subject_bytes, type_bytes = subject.encode(), type_name.encode()
        except AttributeError as exc:
            raise WalRecordError(index, "subject/type", key, "must be str") from exc
        if len(subject_bytes) > 0xFFFF:
            raise WalRecordError(index, "subject", subject, "is longer than 65535 bytes")
        if len(type_bytes) > 0xFF:
            raise WalRecordError(index, "type", type_name, "is longer than 255 bytes")
        if len(self._names) > 4096:
            self._names.clear()
        cached = self._names[key] = (subject_bytes + type_bytes, len(subject_bytes), len(type_bytes))
        return cached

    def _prepare(self, entries: Sequence[Entry]) -> list[_Prepared]:
        """Check every entry and assign sequences before anything is written, so a bad batch changes nothing."""
        prepared: list[_Prepared] = []
        last = self._last_seq
        contiguous = self.contiguous
        cache = self._names
        for index, (payload, ts, subject, type_name, seq, schema) in enumerate(entries):
            if seq is None:
                seq = 1 if last is None else last + 1
            elif seq.__class__ is not int or not 1 <= seq <= MAX_SEQ:
                raise WalRecordError(index, "seq", seq, f"must be an int in 1..{MAX_SEQ}")
            if last is not None and (seq != last + 1 if contiguous else seq <= last):
                raise WalSequenceError(index, seq, last, contiguous=contiguous)
            if ts.__class__ is not int or not -_I64 <= ts < _I64:
                raise WalRecordError(index, "ts", ts, "must be an int64 of nanoseconds")
            if schema.__class__ is not int or not 0 <= schema <= 0xFFFF:
                raise WalRecordError(index, "schema", schema, "must be an int in 0..65535")
            named = cache.get((subject, type_name))
            subject_type, subject_len, type_len = named if named is not None else \
                self._names_for(index, subject, type_name)
            try:
                size = RECORD_HEADER_SIZE + len(subject_type) + memoryview(payload).nbytes
            except TypeError as exc:
                raise WalRecordError(index, "payload", payload, "must be bytes-like") from exc
            if size > MAX_RECORD_SIZE:
                raise WalRecordError(index, "payload", payload, f"makes a {size}-byte record, above {MAX_RECORD_SIZE}")
            prepared.append((seq, ts, subject_type, subject_len, type_len, payload, schema, size))
            last = seq
        return prepared

    def _columns(self, entries: Sequence[Entry]) -> Columns:
        """The batch checked and sequenced: column-wise when it is plainly valid, else record by record."""
        names = self._names

        def names_for(subject: str, type_name: str) -> tuple[bytes, int, int]:
            return names.get((subject, type_name)) or self._names_for(0, subject, type_name)

        try:
            columns = check_columns(entries, self._last_seq, self.contiguous, names_for)
        except ValueError:  # entries that are not 6-field tuples: the per-record path says which
            columns = None
        return columns if columns is not None else from_prepared(self._prepare(entries))

    def _write_chunk(self, tail: _Tail, columns: Columns, start: int) -> int:
        """Encode and write records from `start` while the segment has room; return where it stopped."""
        rest = columns.part(start, len(columns)) if start else columns
        starts = np.zeros(len(rest), dtype=np.int64)
        np.cumsum(rest.lengths[:-1], out=starts[1:])
        # A record goes into this segment if it starts below the limit (the first one always does).
        count = max(1, int(np.searchsorted(starts + tail.size, self._segment_size, side="left")))
        chunk = rest.part(0, count) if count < len(rest) else rest
        data, offsets = frame(chunk, salt=tail.header.salt, sync_back_base=tail.size - tail.durable_size)
        try:
            tail.file.write(memoryview(data))
        except OSError as exc:
            raise self._stop("write", tail.path, exc) from exc
        tail.hasher.update(data)
        tail.body_crc = crc32c(data, tail.body_crc)
        absolute = offsets + tail.size
        tail.offsets.frombytes(absolute.astype("<u4").tobytes())
        self._extend_index(tail, absolute.tolist(), chunk)
        if not tail.count:
            tail.first_seq = int(chunk.seqs[0])
            tail.min_ts, tail.max_ts = int(chunk.ts.min()), int(chunk.ts.max())
        else:
            tail.min_ts, tail.max_ts = min(tail.min_ts, int(chunk.ts.min())), max(tail.max_ts, int(chunk.ts.max()))
        tail.count += count
        tail.size = absolute[-1] + int(chunk.lengths[-1])
        self._last_seq = int(chunk.seqs[-1])
        self._written_gen += 1
        self._written = (self._written_gen, self._last_seq, tail, tail.size)
        return start + count

    @staticmethod
    def _extend_index(tail: _Tail, offsets: list[int], chunk: Columns) -> None:
        """Sparse entries for the first record at or past each INDEX_INTERVAL mark (FORMAT.md, "Sparse index")."""
        prefix_max = np.maximum.accumulate(chunk.ts)
        next_mark, max_before = tail.next_mark, tail.max_before
        position = bisect_left(offsets, next_mark)
        while position < len(offsets):
            before = max(max_before, int(prefix_max[position - 1])) if position else max_before
            tail.index.append((int(chunk.seqs[position]), before, offsets[position]))
            next_mark = offsets[position] + INDEX_INTERVAL
            position = bisect_left(offsets, next_mark, position + 1)
        tail.next_mark = next_mark
        tail.max_before = max(max_before, int(prefix_max[-1]))

    def _roll(self, first_seq: int) -> None:
        """Seal the full segment (if any) and create the next one, named by `first_seq`."""
        with self._sync_lock:
            if self._tail is not None:
                self._seal_locked()
            self._create_segment(first_seq)

    def _seal_locked(self) -> Seal:
        """Make the tail durable, append its seal, sync, and write its index (sync lock held)."""
        tail = self._tail
        assert tail is not None
        self._sync_locked(self._written_gen)
        seal = Seal(tail.count, tail.first_seq, self._last_seq or 0, tail.min_ts, tail.max_ts, tail.body_crc,
                    tail.hasher.digest())
        try:
            tail.file.write(encode_seal(seal, salt=tail.header.salt, sealed_ns=time.time_ns()))
            tail.file.sync()
            tail.file.close()
        except OSError as exc:
            raise self._stop("seal", tail.path, exc) from exc
        seal_offset = tail.size
        info = SegmentInfo(tail.path, tail.header, seal_offset + SEAL_SIZE, seal, seal_offset)
        write_index(info, tail.index, list(tail.offsets))
        self._prev_hash = seal.chain_hash
        self._tail = None
        return seal

    def _create_segment(self, first_seq: int) -> None:
        """etcd's roll: header into a temp file, fsync, rename, fsync the directory, then open for appends."""
        header = SegmentHeader(first_seq, time.time_ns(), os.urandom(8), self._prev_hash, self.contiguous)
        data = header.encode()
        path = self.directory / segment_name(first_seq)
        tmp = path.with_name(path.name + ".tmp")
        operation = "create segment"
        try:
            handle = self._opener(tmp)
            try:
                handle.write(data)
                handle.sync()
            finally:
                handle.close()
            operation = "rename segment"
            os.rename(tmp, path)
            operation = "fsync directory"
            fsync_dir(self.directory)
            operation = "open segment"
            appender = self._opener(path)
        except OSError as exc:
            raise self._stop(operation, path, exc) from exc
        self._tail = _Tail(path, appender, header, HEADER_SIZE, HEADER_SIZE, hashlib.sha256(data), crc32c(data))

    def _reopen_tail(self, info: SegmentInfo, scan: ScanResult) -> _Tail:
        """Pick up the recovered tail segment where its valid records end."""
        with mapped(info.path) as buf:
            hasher = hashlib.sha256(buf[: scan.end])
            body_crc = crc32c(buf[: scan.end])
        tail = _Tail(info.path, self._opener(info.path), info.header, scan.end, scan.end, hasher, body_crc,
                     scan.count, scan.first_seq or 0, scan.min_ts or 0, scan.max_ts or 0, list(scan.index),
                     array("I", scan.offsets))
        tail.next_mark = scan.index[-1][2] + INDEX_INTERVAL if scan.index else HEADER_SIZE
        tail.max_before = scan.max_ts if scan.max_ts is not None else INT64_MIN
        return tail
