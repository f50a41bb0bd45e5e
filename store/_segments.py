"""Finding a log's segments and checking that they form one unbroken chain."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from store._format import (
    HEADER_SIZE,
    NAME_DIGITS,
    RECORD_HEADER,
    RT_SEAL,
    SEAL_SIZE,
    SEGMENT_SUFFIX,
    ZERO_HASH,
    Seal,
    SegmentHeader,
    decode_header,
    decode_seal,
    frame_problem,
)
from store.errors import WalCorruptionError, WalLayoutError

# A last segment with an unreadable header is an interrupted roll only if it holds nothing
# else; past this size an unreadable header is damage, not an orphan.
_ORPHAN_SCAN_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment file: its header and, when sealed, its seal."""

    path: Path
    header: SegmentHeader
    size: int
    seal: Seal | None
    seal_offset: int | None

    @property
    def sealed(self) -> bool:
        """True once the segment's seal record is on disk."""
        return self.seal is not None


@dataclass(frozen=True, slots=True)
class Layout:
    """The segments of a log in order, plus a trailing orphan (interrupted roll) if there is one."""

    directory: Path
    segments: list[SegmentInfo]
    orphan: Path | None

    @property
    def contiguous(self) -> bool | None:
        """The log's sequence mode, or None for a log with no segment yet."""
        return self.segments[0].header.contiguous if self.segments else None


@contextmanager
def mapped(path: Path) -> Iterator[memoryview]:
    """A read-only memoryview of a whole file (empty for an empty file), released on exit."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            yield memoryview(b"")
            return
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                yield view
            finally:
                view.release()


def segment_paths(directory: Path) -> list[Path]:
    """Every `*.wal` file of the log, in sequence order; a badly named one is reported."""
    paths = []
    for path in directory.iterdir():
        if not path.name.endswith(SEGMENT_SUFFIX):
            continue
        stem = path.name[: -len(SEGMENT_SUFFIX)]
        if len(stem) != NAME_DIGITS or not stem.isdigit():
            raise WalLayoutError(path, "name", f"not a {NAME_DIGITS}-digit sequence name")
        paths.append(path)
    return sorted(paths)


def read_segment_info(path: Path) -> SegmentInfo:
    """Read a segment's header and look for its seal at the end of the file."""
    with mapped(path) as buf:
        header = decode_header(bytes(buf[:HEADER_SIZE]), path)  # a copy: no view may outlive the map
        size = len(buf)
        seal = seal_offset = None
        candidate = size - SEAL_SIZE
        if candidate >= HEADER_SIZE and frame_problem(buf, candidate, size, header.salt) is None \
                and RECORD_HEADER.unpack_from(buf, candidate)[2] == RT_SEAL:
            seal, seal_offset = decode_seal(buf, candidate), candidate
    return SegmentInfo(path, header, size, seal, seal_offset)


def _is_orphan(path: Path) -> bool:
    """True when a segment file holds no more than a never-synced header (zeros or a short file)."""
    size = path.stat().st_size
    if size <= HEADER_SIZE:
        return True
    if size > _ORPHAN_SCAN_LIMIT:
        return False
    data = path.read_bytes()
    return data[HEADER_SIZE:] == bytes(size - HEADER_SIZE)


def load_layout(directory: Path) -> Layout:
    """All segments with their headers and seals, checked as a chain; raise WalLayoutError if broken."""
    paths = segment_paths(directory)
    infos: list[SegmentInfo] = []
    orphan = None
    for position, path in enumerate(paths):
        try:
            infos.append(read_segment_info(path))
        except WalCorruptionError:
            if position == len(paths) - 1 and _is_orphan(path):
                orphan = path
                break
            raise
    check_chain(infos)
    return Layout(directory, infos, orphan)


def check_chain(infos: list[SegmentInfo]) -> None:
    """Names, modes, seals, hash chain and sequence continuity across segments."""
    seen: dict[int, Path] = {}
    for position, info in enumerate(infos):
        first = info.header.first_seq
        if first in seen:
            raise WalLayoutError(info.path, "duplicate", f"same first sequence {first} as {seen[first].name}")
        seen[first] = info.path
        if info.path.name[:NAME_DIGITS] != f"{first:0{NAME_DIGITS}d}":
            raise WalLayoutError(info.path, "name", f"header says first sequence {first}")
        if info.header.contiguous != infos[0].header.contiguous:
            raise WalLayoutError(info.path, "mode", "sequence mode differs from the first segment's")
        if position < len(infos) - 1 and info.seal is None:
            raise WalLayoutError(info.path, "unsealed", "only the last segment may be unsealed")
        if position == 0:
            if info.header.prev_hash != ZERO_HASH:
                raise WalLayoutError(info.path, "missing", "it chains to an earlier segment that is absent", offset=40)
            continue
        _check_link(infos, position)


def _check_link(infos: list[SegmentInfo], position: int) -> None:
    """Check segment `position` against the one before it."""
    prev, info = infos[position - 1], infos[position]
    assert prev.seal is not None  # checked by the caller: only the last segment may be unsealed
    first = info.header.first_seq
    if first <= prev.seal.last_seq:
        raise WalLayoutError(info.path, "overlap",
                             f"first sequence {first} is not after {prev.path.name}'s last {prev.seal.last_seq}")
    if info.header.prev_hash != prev.seal.chain_hash:
        earlier = [other for other in infos[: position - 1] if other.seal and other.seal.chain_hash == info.header.prev_hash]
        if earlier:
            raise WalLayoutError(prev.path, "extra", f"{info.path.name} chains to {earlier[-1].path.name}, not to it")
        raise WalLayoutError(info.path, "missing",
                             f"its previous-segment hash does not match {prev.path.name}'s seal", offset=40)
    if info.header.contiguous and first != prev.seal.last_seq + 1:
        raise WalLayoutError(info.path, "gap", f"first sequence {first} after {prev.seal.last_seq} in a contiguous log")
