"""Turning a segment's records into Arrow record batches in bulk, with zero-copy views of the payloads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store._format import RECORD_HEADER_SIZE

if TYPE_CHECKING:
    from store._query import Query, SubjectFilter

BATCH_SCHEMA = pa.schema([
    ("seq", pa.uint64()),
    ("ts", pa.int64()),
    ("subject", pa.string_view()),
    ("type", pa.string_view()),
    ("payload", pa.binary_view()),
])
PLAIN_SCHEMA = pa.schema([
    ("seq", pa.uint64()),
    ("ts", pa.int64()),
    ("subject", pa.string()),
    ("type", pa.string()),
    ("payload", pa.binary()),
])

_INLINE = 12  # Arrow's view layout keeps values of up to 12 bytes inline
_VIEW = np.dtype([("length", "<i4"), ("word0", "<u8"), ("word1", "<u4")])
# Masks keeping the first k bytes of a little-endian word, for k = 0..8 (and 0..4).
_MASK64 = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_MASK32 = np.array([(1 << (8 * k)) - 1 for k in range(5)], dtype=np.uint32)


class _Words:
    """Unaligned little-endian integer views of a byte buffer: `u64[i]` is the 8 bytes starting at byte i.

    A strided view with a one-byte stride makes reading a field of every record a single 1-D
    gather, instead of a per-record loop or a gather of every byte.
    """

    def __init__(self, data: np.ndarray) -> None:
        self.size = size = len(data)
        self.u64 = self._view(data, "<u8", size)
        self.i64 = self._view(data, "<i8", size)
        self.u32 = self._view(data, "<u4", size)
        self.u16 = self._view(data, "<u2", size)
        self.u8 = data

    @staticmethod
    def _view(data: np.ndarray, dtype: str, size: int) -> np.ndarray:
        width = np.dtype(dtype).itemsize
        count = max(size - width + 1, 0)
        return np.ndarray((count,), dtype=dtype, buffer=data, offset=0, strides=(1,))


def segment_batches(view: memoryview, offsets: list[int] | np.ndarray, query: Query,
                    subject_filter: SubjectFilter | None, *, batch_size: int, views: bool) -> Iterator[pa.RecordBatch]:
    """Batches of the records at `offsets` (already validated) that match the query."""
    data = np.frombuffer(view, dtype=np.uint8)
    words = _Words(data)
    buffer = pa.py_buffer(view)
    for start in range(0, len(offsets), batch_size):
        positions = np.asarray(offsets[start:start + batch_size], dtype=np.int64)
        fields = _Fields(words, positions)
        keep = _range_mask(fields, query)
        if keep is not None:
            fields = fields.take(keep)
        keep = _name_mask(words, buffer, fields, query, subject_filter)
        if keep is not None:
            fields = fields.take(keep)
        if len(fields.positions):
            batch = _build(words, buffer, fields)
            yield batch if views else batch.cast(PLAIN_SCHEMA)


class _Fields:
    """The fixed header fields of a set of records, gathered column by column."""

    def __init__(self, words: _Words, positions: np.ndarray) -> None:
        self.positions = positions
        self.length = words.u32[positions + 4].astype(np.int64)
        self.seq = words.u64[positions + 12]
        self.ts = words.i64[positions + 20]
        self.subject_len = words.u16[positions + 40].astype(np.int64)
        self.type_len = words.u8[positions + 42].astype(np.int64)

    def take(self, keep: np.ndarray) -> _Fields:
        """The subset of rows where `keep` is true."""
        taken = object.__new__(_Fields)
        for name in ("positions", "length", "seq", "ts", "subject_len", "type_len"):
            setattr(taken, name, getattr(self, name)[keep])
        return taken


def _range_mask(fields: _Fields, query: Query) -> np.ndarray | None:
    """Rows inside the query's sequence and time ranges, or None when the query has no range."""
    keep = None
    for values, low, high, inclusive in ((fields.seq, query.start_seq, query.end_seq, True),
                                         (fields.ts, query.start_ts, query.end_ts, False)):
        if low is not None:
            part = values >= low
            keep = part if keep is None else keep & part
        if high is not None:
            part = values <= high if inclusive else values < high
            keep = part if keep is None else keep & part
    return keep


def _build(words: _Words, buffer: pa.Buffer, fields: _Fields) -> pa.RecordBatch:
    """One batch whose string and binary columns are views into the mapped segment."""
    subject_start = fields.positions + RECORD_HEADER_SIZE
    type_start = subject_start + fields.subject_len
    payload_start = type_start + fields.type_len
    payload_len = fields.length - (payload_start - fields.positions)
    columns = [
        pa.array(fields.seq, type=pa.uint64()),
        pa.array(fields.ts, type=pa.int64()),
        _view_array(pa.string_view(), words, buffer, subject_start, fields.subject_len),
        _view_array(pa.string_view(), words, buffer, type_start, fields.type_len),
        _view_array(pa.binary_view(), words, buffer, payload_start, payload_len),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=BATCH_SCHEMA)


def _view_array(kind: pa.DataType, words: _Words, buffer: pa.Buffer, start: np.ndarray,
                length: np.ndarray) -> pa.Array:
    """An Arrow string_view / binary_view array: 16-byte views built with numpy, no value copied.

    A view is (length, 12 inline bytes) for values of up to 12 bytes, else (length, 4-byte
    prefix, buffer index 0, offset into the segment).
    """
    n = len(start)
    # Values ending within 12 bytes of the end of the file cannot use the 12-byte word reads.
    near_end = start + _INLINE > words.size
    safe = np.where(near_end, 0, start)
    views = np.zeros(n, dtype=_VIEW)
    views["length"] = length
    word0 = words.u64[safe]
    word1 = words.u32[safe + 8]
    long = length > _INLINE
    views["word0"] = np.where(long, word0 & np.uint64(0xFFFFFFFF), word0 & _MASK64[np.minimum(length, 8)])
    views["word1"] = np.where(long, start.astype(np.uint32), word1 & _MASK32[np.clip(length - 8, 0, 4)])
    if near_end.any():
        raw = words.u8
        for row in np.flatnonzero(near_end):
            value = raw[start[row]:start[row] + length[row]].tobytes()
            inline = value.ljust(_INLINE, b"\0")
            views["word0"][row] = int.from_bytes(inline[:8], "little")
            views["word1"][row] = int.from_bytes(inline[8:12], "little")
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(views), buffer])


def _name_mask(words: _Words, buffer: pa.Buffer, fields: _Fields, query: Query,
               subject_filter: SubjectFilter | None) -> np.ndarray | None:
    """Rows whose type and subject pass the filters (a pattern is matched once per distinct subject)."""
    if query.types is None and subject_filter is None:
        return None
    subject_start = fields.positions + RECORD_HEADER_SIZE
    mask = np.ones(len(fields.positions), dtype=bool)
    # Arrow's is_in and take have no view kernels yet, so filter on plain copies of the short names.
    if query.types is not None:
        types = _view_array(pa.string_view(), words, buffer, subject_start + fields.subject_len,
                            fields.type_len).cast(pa.string())
        mask &= pc.is_in(types, value_set=pa.array(sorted(query.types))).to_numpy(zero_copy_only=False)
    if subject_filter is not None:
        subjects = _view_array(pa.string_view(), words, buffer, subject_start, fields.subject_len).cast(pa.string())
        matching = [subject for subject in pc.unique(subjects).to_pylist() if subject_filter(subject.encode())]
        mask &= pc.is_in(subjects, value_set=pa.array(matching, type=pa.string())).to_numpy(zero_copy_only=False)
    return mask
