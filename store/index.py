"""The index sidecar of a sealed segment: sparse sequence/time → offset entries plus every record's offset."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from crc32c import crc32c

from store._files import write_file_atomically
from store._format import HEADER_SIZE, INDEX_INTERVAL, U32, mask, scan_segment
from store._segments import SegmentInfo, mapped

log = logging.getLogger(__name__)

INDEX_MAGIC = b"SQWALIDX"
INDEX_VERSION = 1
INDEX_HEADER = struct.Struct("<8sHHI8sQQQ")
ENTRY_DTYPE = np.dtype([("seq", "<u8"), ("max_before", "<i8"), ("offset", "<u8")])
OFFSET_DTYPE = np.dtype("<u4")
INDEX_SUFFIX = ".idx"


@dataclass(frozen=True, slots=True)
class SegmentIndex:
    """Sparse (seq, max event time before, offset) entries and the offset of every record."""

    entries: np.ndarray
    offsets: np.ndarray

    def offset_for_seq(self, seq: int) -> int:
        """Offset of the last indexed record with sequence ≤ `seq` (scan from there)."""
        position = int(np.searchsorted(self.entries["seq"], np.uint64(seq), side="right")) - 1
        return int(self.entries["offset"][position]) if position >= 0 else HEADER_SIZE

    def offset_for_time(self, ts: int) -> int:
        """Offset before which every record's event time is below `ts` (scan from there)."""
        position = int(np.searchsorted(self.entries["max_before"], np.int64(ts), side="left")) - 1
        return int(self.entries["offset"][position]) if position >= 0 else HEADER_SIZE


def index_path(segment: Path) -> Path:
    """Where a segment's index lives."""
    return segment.with_suffix(INDEX_SUFFIX)


def encode_index(entries: list[tuple[int, int, int]], offsets: list[int] | np.ndarray, *, salt: bytes,
                 covered: int) -> bytes:
    """The index file's bytes: a pure function of the segment, so a rebuild is byte-identical."""
    sparse = np.array(entries, dtype=ENTRY_DTYPE) if entries else np.zeros(0, ENTRY_DTYPE)
    dense = np.asarray(offsets, dtype=OFFSET_DTYPE)
    body = INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, 0, INDEX_INTERVAL, salt, covered, len(sparse), len(dense))
    body += sparse.tobytes() + dense.tobytes()
    return body + U32.pack(mask(crc32c(body)))


def decode_index(data: bytes, *, salt: bytes, covered: int) -> SegmentIndex | None:
    """The index in `data` if it is intact and belongs to this segment as it is now, else None."""
    if len(data) < INDEX_HEADER.size + 4 or U32.unpack_from(data, len(data) - 4)[0] != mask(crc32c(data[:-4])):
        return None
    magic, version, _reserved, interval, isalt, icovered, count, records = INDEX_HEADER.unpack_from(data, 0)
    if (magic, version, interval, isalt, icovered) != (INDEX_MAGIC, INDEX_VERSION, INDEX_INTERVAL, salt, covered):
        return None
    dense_at = INDEX_HEADER.size + count * ENTRY_DTYPE.itemsize
    if len(data) != dense_at + records * OFFSET_DTYPE.itemsize + 4:
        return None
    entries = np.frombuffer(data, ENTRY_DTYPE, count, INDEX_HEADER.size)
    offsets = np.frombuffer(data, OFFSET_DTYPE, records, dense_at)
    return SegmentIndex(entries, offsets)


def write_index(segment: SegmentInfo, entries: list[tuple[int, int, int]], offsets: list[int] | np.ndarray) -> bool:
    """Persist a sealed segment's index; False (logged) when the directory refuses, as it is only a cache."""
    assert segment.seal_offset is not None
    data = encode_index(entries, offsets, salt=segment.header.salt, covered=segment.seal_offset)
    try:
        write_file_atomically(index_path(segment.path), data, durable=False)
    except OSError as exc:
        log.warning("could not write index for %s: %s", segment.path.name, exc)
        return False
    return True


def load_index(segment: SegmentInfo, *, persist: bool = True) -> SegmentIndex:
    """The sealed segment's index from its sidecar, rebuilt when missing, corrupt or stale."""
    assert segment.seal_offset is not None, "only sealed segments have index files"
    try:
        data = index_path(segment.path).read_bytes()
    except FileNotFoundError:
        data = b""
    index = decode_index(data, salt=segment.header.salt, covered=segment.seal_offset)
    return index if index is not None else rebuild_index(segment, persist=persist)


def rebuild_index(segment: SegmentInfo, *, persist: bool = True) -> SegmentIndex:
    """Recompute a sealed segment's index from its records (the rule the writer applies) and store it."""
    with mapped(segment.path) as buf:
        scan = scan_segment(buf, segment.header, segment.path, prev_seq=None)
    if persist:
        write_index(segment, scan.index, scan.offsets)
    entries = np.array(scan.index, dtype=ENTRY_DTYPE) if scan.index else np.zeros(0, ENTRY_DTYPE)
    return SegmentIndex(entries, np.asarray(scan.offsets, dtype=OFFSET_DTYPE))
