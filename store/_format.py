"""Byte layout of segments, records and seals (FORMAT.md), and the record-by-record scan; no file I/O."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c

from store.errors import WalCorruptionError

MAGIC = b"\x89SQWAL\r\n"
FORMAT_VERSION = 1
SEGMENT_HEADER = struct.Struct("<8sHHIQq8s32sI4x")
HEADER_SIZE = SEGMENT_HEADER.size
FLAG_CONTIGUOUS = 1

# crc | length | type | flags | schema | seq | ts | salt | sync_back | subject len | type len | reserved
RECORD_HEADER = struct.Struct("<IIBBHQq8sIHBB")
# The same header without its leading CRC: what the writer packs before computing the CRC.
RECORD_HEADER_NO_CRC = struct.Struct("<IBBHQq8sIHBB")
RECORD_HEADER_SIZE = RECORD_HEADER.size
LENGTH_OFFSET = 4
SALT_OFFSET = 28
U32 = struct.Struct("<I")

RT_EVENT = 1
RT_SEAL = 2
SEAL_PAYLOAD = struct.Struct("<QQQqqI32s")
SEAL_SIZE = RECORD_HEADER_SIZE + SEAL_PAYLOAD.size

MAX_RECORD_SIZE = 16 << 20
# Segments stay below 2 GiB so that offsets fit the int32 fields of Arrow binary views.
MAX_SEGMENT_SIZE = 1 << 30
MAX_SEQ = (1 << 64) - 1
ZERO_HASH = bytes(32)
SEGMENT_SUFFIX = ".wal"
NAME_DIGITS = 20
_MASK_DELTA = 0xA282EAD8


def mask(crc: int) -> int:
    """LevelDB's CRC mask: rotate right by 15 and add a constant, so CRCs of CRCs stay strong."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record has `first_seq`."""
    return f"{first_seq:0{NAME_DIGITS}d}{SEGMENT_SUFFIX}"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The fixed header at the start of every segment file."""

    first_seq: int
    created_ns: int
    salt: bytes
    prev_hash: bytes
    contiguous: bool
    version: int = FORMAT_VERSION

    def encode(self) -> bytes:
        """The 80 header bytes, CRC included."""
        flags = FLAG_CONTIGUOUS if self.contiguous else 0
        body = SEGMENT_HEADER.pack(MAGIC, self.version, HEADER_SIZE, flags, self.first_seq, self.created_ns,
                                   self.salt, self.prev_hash, 0)
        return body[:72] + U32.pack(mask(crc32c(body[:72]))) + body[76:]


def decode_header(data: bytes | memoryview, segment: Path) -> SegmentHeader:
    """Parse and check a segment header; raise WalCorruptionError at offset 0 when it is not one."""
    if len(data) < HEADER_SIZE:
        raise WalCorruptionError(segment, 0, f"header is {len(data)} bytes, expected {HEADER_SIZE}")
    magic, version, size, flags, first_seq, created, salt, prev, crc = SEGMENT_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise WalCorruptionError(segment, 0, f"bad magic {magic!r}")
    if crc != mask(crc32c(data[:72])):
        raise WalCorruptionError(segment, 72, "segment header CRC mismatch")
    if version != FORMAT_VERSION or size != HEADER_SIZE:
        raise WalCorruptionError(segment, 8, f"unsupported format version {version} (header size {size})")
    if flags & ~FLAG_CONTIGUOUS:
        raise WalCorruptionError(segment, 12, f"unknown header flags {flags:#x}")
    return SegmentHeader(first_seq, created, salt, prev, bool(flags & FLAG_CONTIGUOUS), version)


@dataclass(frozen=True, slots=True)
class Seal:
    """What a seal record says about its segment."""

    count: int
    first_seq: int
    last_seq: int
    min_ts: int
    max_ts: int
    body_crc: int
    chain_hash: bytes


def encode_record(*, rtype: int, seq: int, ts: int, salt: bytes, sync_back: int, subject_type: bytes,
                  subject_len: int, type_len: int, payload: bytes | memoryview, schema: int) -> bytes:
    """One framed record (used for seals and tests; the writer inlines the same steps for speed)."""
    length = RECORD_HEADER_SIZE + len(subject_type) + len(payload)
    rest = RECORD_HEADER_NO_CRC.pack(length, rtype, 0, schema, seq, ts, salt, sync_back, subject_len, type_len, 0)
    body = rest + subject_type + bytes(payload)
    return U32.pack(mask(crc32c(body))) + body


def encode_seal(seal: Seal, *, salt: bytes, sealed_ns: int) -> bytes:
    """The seal record closing a segment."""
    payload = SEAL_PAYLOAD.pack(seal.count, seal.first_seq, seal.last_seq, seal.min_ts, seal.max_ts,
                                seal.body_crc, seal.chain_hash)
    return encode_record(rtype=RT_SEAL, seq=seal.last_seq, ts=sealed_ns, salt=salt, sync_back=0,
                         subject_type=b"", subject_len=0, type_len=0, payload=payload, schema=FORMAT_VERSION)


def frame_problem(buf: memoryview, off: int, end: int, salt: bytes) -> str | None:
    """Why the bytes at `off` are not a well-framed record of this segment, or None when they are."""
    if end - off < RECORD_HEADER_SIZE:
        return f"{end - off} bytes left, a record header needs {RECORD_HEADER_SIZE}"
    crc, length, rtype, flags, _schema, _seq, _ts, rsalt, back, slen, tlen, reserved = \
        RECORD_HEADER.unpack_from(buf, off)
    # Bounds before anything else, so an absurd length costs no work and no allocation.
    if length < RECORD_HEADER_SIZE or length > MAX_RECORD_SIZE:
        return f"length {length} outside {RECORD_HEADER_SIZE}..{MAX_RECORD_SIZE}"
    if off + length > end:
        return f"length {length} runs past the end of the data at {end}"
    if crc != mask(crc32c(buf[off + 4:off + length])):
        return "record CRC mismatch"
    if rsalt != salt:
        return "salt differs from the segment's"
    if rtype not in (RT_EVENT, RT_SEAL) or flags or reserved:
        return f"unknown record type {rtype} or flags {flags:#x}/{reserved:#x}"
    if RECORD_HEADER_SIZE + slen + tlen > length:
        return f"subject ({slen}) and type ({tlen}) lengths exceed the record length {length}"
    if back > off - HEADER_SIZE:
        return f"sync back {back} points before the first record"
    if rtype == RT_SEAL and length != SEAL_SIZE:
        return f"seal record of length {length}, expected {SEAL_SIZE}"
    return None


def decode_seal(buf: memoryview, off: int) -> Seal:
    """The seal stored in the (already validated) seal record at `off`."""
    return Seal(*SEAL_PAYLOAD.unpack_from(buf, off + RECORD_HEADER_SIZE))


INDEX_INTERVAL = 4096
INT64_MIN = -(1 << 63)


@dataclass(slots=True)
class ScanResult:
    """What a full record-by-record scan of one segment found."""

    end: int = HEADER_SIZE
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    min_ts: int | None = None
    max_ts: int | None = None
    seal: Seal | None = None
    seal_offset: int | None = None
    bad_offset: int | None = None
    reason: str | None = None
    index: list[tuple[int, int, int]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


def scan_segment(buf: memoryview, header: SegmentHeader, segment: Path, *, prev_seq: int | None) -> ScanResult:
    """Walk every record from the header on, checking each fully; stop at the first problem or the seal.

    `prev_seq` is the last sequence of the previous segment (None for the first), so order and
    contiguity are checked across the boundary too. Builds the sparse index on the way.
    """
    end = len(buf)
    out = ScanResult()
    salt = header.salt
    off = HEADER_SIZE
    next_mark = HEADER_SIZE
    max_before = INT64_MIN
    last = prev_seq
    while off < end:
        problem = frame_problem(buf, off, end, salt)
        if problem is None:
            _crc, length, rtype, _f, _s, seq, ts, _salt, _b, _sl, _tl, _r = RECORD_HEADER.unpack_from(buf, off)
            if rtype == RT_SEAL:
                problem = _seal_problem(decode_seal(buf, off), out, off + length, end, seq)
                if problem is None:
                    out.seal = decode_seal(buf, off)
                    out.seal_offset = off
                    out.end = off + length
                    return out
            elif out.count == 0 and seq != header.first_seq:
                problem = f"first sequence {seq} differs from the header's {header.first_seq}"
            elif last is not None and (seq != last + 1 if header.contiguous else seq <= last):
                problem = f"sequence {seq} after {last} breaks the {'contiguous' if header.contiguous else 'increasing'} order"
        if problem is not None:
            out.bad_offset = off
            out.reason = problem
            return out
        if off >= next_mark:
            out.index.append((seq, max_before, off))
            next_mark = off + INDEX_INTERVAL
        out.offsets.append(off)
        if out.count == 0:
            out.first_seq = seq
            out.min_ts = out.max_ts = ts
        else:
            out.min_ts = min(out.min_ts, ts)  # type: ignore[type-var]
            out.max_ts = max(out.max_ts, ts)  # type: ignore[type-var]
        max_before = max(max_before, ts)
        out.count += 1
        out.last_seq = last = seq
        off += length
        out.end = off
    return out


def _seal_problem(seal: Seal, seen: ScanResult, seal_end: int, file_end: int, seq: int) -> str | None:
    """Why a CRC-valid seal record does not match the records before it, or None."""
    if seen.count == 0:
        return "seal record in a segment with no records"
    expected = (seen.count, seen.first_seq, seen.last_seq, seen.min_ts, seen.max_ts)
    found = (seal.count, seal.first_seq, seal.last_seq, seal.min_ts, seal.max_ts)
    if found != expected or seq != seal.last_seq:
        return f"seal says (count, first, last, min ts, max ts) = {found}, the records say {expected}"
    if seal_end != file_end:
        return f"{file_end - seal_end} bytes after the seal"
    return None


def find_valid_after(buf: memoryview, start: int, salt: bytes) -> list[tuple[int, int]]:
    """(offset, sync back) of every well-framed record beginning after `start`, found via the salt.

    `buf` must be a view of a whole object with a `find` method (bytes, bytearray or mmap), so
    the search runs at memchr speed instead of trying every byte offset.
    """
    found: list[tuple[int, int]] = []
    end = len(buf)
    finder = buf.obj.find  # type: ignore[attr-defined]  # bytes, bytearray and mmap all have find
    pos = start + 1 + SALT_OFFSET
    while pos < end:
        hit = finder(salt, pos, end)
        if hit < 0:
            break
        candidate = hit - SALT_OFFSET
        if frame_problem(buf, candidate, end, salt) is None:
            length = U32.unpack_from(buf, candidate + LENGTH_OFFSET)[0]
            back = U32.unpack_from(buf, candidate + 36)[0]
            found.append((candidate, back))
            pos = candidate + length + SALT_OFFSET
        else:
            pos = hit + 1
    return found


def check_seal_hashes(path: Path, buf: memoryview, scan: ScanResult) -> None:
    """The seal's whole-body CRC32C and SHA-256 chain hash against the bytes before it."""
    assert scan.seal is not None and scan.seal_offset is not None
    body = buf[: scan.seal_offset]
    try:
        if crc32c(body) != scan.seal.body_crc:
            raise WalCorruptionError(path, scan.seal_offset, "segment body CRC differs from its seal")
        if hashlib.sha256(body).digest() != scan.seal.chain_hash:
            raise WalCorruptionError(path, scan.seal_offset, "segment SHA-256 differs from its seal's chain hash")
    finally:
        body.release()
