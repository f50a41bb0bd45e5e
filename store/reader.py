"""Reading a log: records by sequence or time range with filters, Arrow batches, and verification."""

from __future__ import annotations

import logging
import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from crc32c import crc32c

from store._format import (
    HEADER_SIZE,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RT_SEAL,
    check_seal_hashes,
    find_valid_after,
    frame_problem,
    scan_segment,
)
from store._query import Query, SubjectFilter
from store._segments import Layout, SegmentInfo, load_layout, mapped
from store.errors import WalCorruptionError, WalLayoutError
from store.index import load_index, rebuild_index
from store.recovery import judge_tail

if TYPE_CHECKING:
    import pyarrow as pa


_LENGTH_AT_4 = struct.Struct("<4xI")
_LENGTH_BYTES = np.arange(4, 8)
log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One record as read back; `payload` is a zero-copy view into the mapped segment."""

    seq: int
    ts: int
    subject: str
    type: str
    payload: memoryview
    schema: int
    segment: Path
    offset: int


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """A clean verification: what was checked, and the newest chain hash to anchor elsewhere."""

    segments: int
    sealed: int
    records: int
    last_seq: int | None
    chain_hash: bytes | None
    torn_tail: tuple[Path, int, int] | None  # segment, offset, bytes a writer's open will truncate


class WalReader:
    """Reads a log directory while a writer may be appending to it; never modifies it except index files."""

    def __init__(self, directory: Path | str, *, persist_index: bool = True) -> None:
        self.directory = Path(directory)
        self.persist_index = persist_index
        self._maps: dict[tuple[Path, int], mmap.mmap] = {}
        self._names: dict[bytes, str] = {}

    def layout(self) -> Layout:
        """The segments as they are now (re-read on every call: the writer may have rolled)."""
        return load_layout(self.directory)

    @property
    def last_seq(self) -> int | None:
        """The last sequence readable now."""
        layout = self.layout()
        if not layout.segments:
            return None
        last = layout.segments[-1]
        if last.seal is not None:
            return last.seal.last_seq
        seq = None
        for record in self._segment_records(last, HEADER_SIZE, Query(), prev_seq=None):
            seq = record.seq
        return seq

    def close(self) -> None:
        """Drop the mappings (payload views handed out keep theirs alive until released)."""
        self._maps.clear()

    def records(self, *, start_seq: int | None = None, end_seq: int | None = None, start_ts: int | None = None,
                end_ts: int | None = None, types: Iterable[str] | None = None,
                subject: str | None = None) -> Iterator[Record]:
        """Records in sequence order, every CRC checked; a damaged record raises, never is skipped."""
        query = Query(start_seq, end_seq, start_ts, end_ts, frozenset(types) if types is not None else None, subject)
        for info, offset in self._plan(query):
            yield from self._segment_records(info, offset, query, prev_seq=None)

    def batches(self, *, start_seq: int | None = None, end_seq: int | None = None, start_ts: int | None = None,
                end_ts: int | None = None, types: Iterable[str] | None = None, subject: str | None = None,
                batch_size: int = 65536, views: bool = True) -> Iterator[pa.RecordBatch]:
        """Arrow record batches (seq, ts, subject, type, payload) for bulk replay.

        Sealed segments are checked once with their seal's whole-body CRC32C instead of record
        by record. `views=True` yields zero-copy string_view/binary_view columns over the mapped
        segment; `views=False` casts them to plain string/binary.
        """
        from store._arrow import segment_batches  # local: pyarrow loads only for Arrow reads

        query = Query(start_seq, end_seq, start_ts, end_ts, frozenset(types) if types is not None else None, subject)
        subject_filter = SubjectFilter(subject) if subject is not None else None
        for info, offset in self._plan(query):
            view = self._view(info)
            offsets: np.ndarray | list[int]
            if info.seal is not None:
                offsets = self._sealed_offsets(info, view, offset, query.end_seq)
            else:
                offsets = self._tail_offsets(info, view, offset)
            yield from segment_batches(view, offsets, query, subject_filter, batch_size=batch_size, views=views)

    def sealed_batches(self, info: SegmentInfo, *, batch_size: int = 65536,
                       views: bool = True) -> Iterator[pa.RecordBatch]:
        """Every record of one sealed segment as Arrow batches, after its whole-body CRC check (export, backup)."""
        from store._arrow import segment_batches  # local: pyarrow loads only for Arrow reads

        if info.seal is None:
            raise ValueError(f"{info.path.name} is not sealed")
        view = self._view(info)
        offsets = self._sealed_offsets(info, view, HEADER_SIZE, None)
        yield from segment_batches(view, offsets, Query(), None, batch_size=batch_size, views=views)

    def verify(self) -> VerifyReport:
        """Check every record's CRC, every seal and the hash chain; raise for the first damage found."""
        layout = self._checked_layout()
        records = 0
        last_seq = None
        chain = None
        torn = None
        for position, info in enumerate(layout.segments):
            is_last = position == len(layout.segments) - 1
            with mapped(info.path) as buf:
                scan = scan_segment(buf, info.header, info.path, prev_seq=last_seq)
                if scan.bad_offset is not None:
                    if not is_last or info.seal is not None:
                        raise WalCorruptionError(info.path, scan.bad_offset, scan.reason or "bad record")
                    verdict = judge_tail(info, last_seq)
                    if verdict.corrupt is not None:
                        raise verdict.corrupt
                    torn = (info.path, scan.bad_offset, len(buf) - scan.bad_offset)
                if scan.seal is not None:
                    check_seal_hashes(info.path, buf, scan)
                    chain = scan.seal.chain_hash
            records += scan.count
            last_seq = scan.last_seq if scan.last_seq is not None else last_seq
        sealed = sum(1 for info in layout.segments if info.seal is not None)
        return VerifyReport(len(layout.segments), sealed, records, last_seq, chain, torn)

    # -- internals -------------------------------------------------------------------------

    def _checked_layout(self) -> Layout:
        """The layout, with a damaged seal pinned to its exact offset rather than reported as 'unsealed'."""
        try:
            return load_layout(self.directory)
        except WalLayoutError as exc:
            if exc.problem != "unsealed":
                raise
            info_path = exc.segment
            from store._format import decode_header

            with mapped(info_path) as buf:
                header = decode_header(bytes(buf[:HEADER_SIZE]), info_path)
                scan = scan_segment(buf, header, info_path, prev_seq=None)
            offset = scan.bad_offset if scan.bad_offset is not None else scan.end
            raise WalCorruptionError(info_path, offset, f"{scan.reason or 'segment ends'} where its seal "
                                                        f"should be; only the last segment may be unsealed") from exc

    def _plan(self, query: Query) -> Iterator[tuple[SegmentInfo, int]]:
        """(segment, start offset) pairs a query must read, using seals and sparse indexes to skip."""
        for info in self.layout().segments:
            if query.past(info):
                return
            if info.seal is None:
                yield info, HEADER_SIZE
                continue
            if query.skips(info):
                continue
            offset = HEADER_SIZE
            if query.start_seq is not None or query.start_ts is not None:
                index = load_index(info, persist=self.persist_index)
                if query.start_seq is not None:
                    offset = max(offset, index.offset_for_seq(query.start_seq))
                if query.start_ts is not None:
                    offset = max(offset, index.offset_for_time(query.start_ts))
            yield info, offset

    def _view(self, info: SegmentInfo) -> memoryview:
        """A whole-file mapping; sealed segments are immutable, so theirs are cached."""
        key = (info.path, info.size)
        mm = self._maps.get(key)
        if mm is None:
            with open(info.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                mm = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)
            if info.seal is not None:
                self._maps[key] = mm
        return memoryview(mm)

    def _sealed_offsets(self, info: SegmentInfo, view: memoryview, start: int, end_seq: int | None) -> np.ndarray:
        """Record offsets of a sealed segment, from its index, after one whole-body CRC check.

        The index is not trusted: its offsets are checked against the (now verified) record
        lengths in one vectorised pass, and rebuilt when they do not chain exactly.
        """
        assert info.seal is not None and info.seal_offset is not None
        end = info.seal_offset
        if crc32c(view[:end]) != info.seal.body_crc:
            scan = scan_segment(view, info.header, info.path, prev_seq=None)
            offset = scan.bad_offset if scan.bad_offset is not None else end
            raise WalCorruptionError(info.path, offset, scan.reason or "segment body CRC differs from its seal")
        index = load_index(info, persist=self.persist_index)
        if not _offsets_chain(view, index.offsets, info.seal.count, end):
            log.warning("index of %s does not match its records; rebuilding it", info.path.name)
            index = rebuild_index(info, persist=self.persist_index)
        offsets = index.offsets
        stop = len(offsets)
        if end_seq is not None:
            # The first indexed record past the range bounds the scan (sequences increase).
            after = int(np.searchsorted(index.entries["seq"], np.uint64(end_seq), side="right"))
            if after < len(index.entries):
                stop = int(np.searchsorted(offsets, index.entries["offset"][after]))
        return offsets[int(np.searchsorted(offsets, start)):stop]

    def _tail_offsets(self, info: SegmentInfo, view: memoryview, start: int) -> list[int]:
        """Offsets of the tail's valid records, each fully checked (the tail has no seal yet)."""
        offsets: list[int] = []
        end = len(view)
        salt = info.header.salt
        offset = start
        while offset < end:
            problem = frame_problem(view, offset, end, salt)
            if problem is not None:
                self._raise_or_stop(info, view, offset, problem)
                break
            if view[offset + 8] == RT_SEAL:
                break
            offsets.append(offset)
            offset += _LENGTH_AT_4.unpack_from(view, offset)[0]
        return offsets

    def _segment_records(self, info: SegmentInfo, start: int, query: Query, *,
                         prev_seq: int | None) -> Iterator[Record]:
        """Records of one segment from `start`, each CRC-checked, filtered by the query."""
        view = self._view(info)
        end = len(view) if info.seal_offset is None else info.seal_offset
        salt = info.header.salt
        unpack = RECORD_HEADER.unpack_from
        names = self._names
        subject_filter = SubjectFilter(query.subject) if query.subject is not None else None
        types = query.types
        offset = start
        last = prev_seq
        while offset < end:
            problem = frame_problem(view, offset, len(view), salt)
            if problem is not None:
                self._raise_or_stop(info, view, offset, problem)
                return
            _crc, length, rtype, _flags, schema, seq, ts, _salt, _back, slen, tlen, _r = unpack(view, offset)
            if rtype == RT_SEAL:
                return
            if last is not None and seq <= last:
                raise WalCorruptionError(info.path, offset, f"sequence {seq} after {last}")
            last = seq
            if query.end_seq is not None and seq > query.end_seq:
                return
            a = offset + RECORD_HEADER_SIZE
            b = a + slen
            c = b + tlen
            next_offset = offset + length
            if ((query.start_seq is None or seq >= query.start_seq)
                    and (query.start_ts is None or ts >= query.start_ts)
                    and (query.end_ts is None or ts < query.end_ts)):
                subject_bytes = view[a:b].tobytes()
                type_bytes = view[b:c].tobytes()
                subject = names.get(subject_bytes) or names.setdefault(subject_bytes, subject_bytes.decode())
                type_name = names.get(type_bytes) or names.setdefault(type_bytes, type_bytes.decode())
                if (types is None or type_name in types) and (subject_filter is None or subject_filter(subject_bytes)):
                    yield Record(seq, ts, subject, type_name, view[c:next_offset], schema, info.path, offset)
            offset = next_offset

    def _raise_or_stop(self, info: SegmentInfo, view: memoryview, offset: int, problem: str) -> None:
        """In a sealed segment any bad record is damage; in the tail it is damage only if durable data follows."""
        if info.seal is not None:
            raise WalCorruptionError(info.path, offset, problem)
        proof = [found for found, back in find_valid_after(view, offset, info.header.salt) if found - back > offset]
        if proof:
            raise WalCorruptionError(info.path, offset, f"{problem}; a durable record follows at byte {proof[0]}")


def _offsets_chain(view: memoryview, offsets: np.ndarray, count: int, end: int) -> bool:
    """True when `offsets` are exactly the record starts: each one is the previous plus its length."""
    if len(offsets) != count or count == 0 or offsets[0] != HEADER_SIZE:
        return False
    data = np.frombuffer(view, dtype=np.uint8)
    lengths = data[offsets.astype(np.int64)[:, None] + _LENGTH_BYTES].view("<u4").ravel().astype(np.int64)
    ends = offsets.astype(np.int64) + lengths
    return bool(ends[-1] == end and np.array_equal(ends[:-1], offsets[1:].astype(np.int64)))


__all__ = ["Query", "Record", "SubjectFilter", "VerifyReport", "WalReader"]
