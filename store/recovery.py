"""Crash recovery of the tail segment (torn tail versus corruption) and the operator's repair."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from store._files import DirectoryLock, fsync_dir
from store._format import HEADER_SIZE, ScanResult, check_seal_hashes, find_valid_after, scan_segment
from store._segments import Layout, SegmentInfo, load_layout, mapped, segment_paths
from store.errors import WalCorruptionError, WalLayoutError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TailVerdict:
    """What the tail scan found: the valid prefix, and whether the rest is torn or corrupt."""

    scan: ScanResult
    torn_at: int | None
    torn_bytes: int
    dropped_valid_records: int
    corrupt: WalCorruptionError | None


@dataclass(slots=True)
class RecoveryReport:
    """What opening the log changed on disk; empty after a clean shutdown."""

    truncated: list[tuple[Path, int, int, int]] = field(default_factory=list)  # segment, offset, bytes, valid records
    removed: list[Path] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when opening changed nothing."""
        return not self.truncated and not self.removed


def judge_tail(info: SegmentInfo, prev_seq: int | None) -> TailVerdict:
    """Scan a segment in full and classify whatever follows its valid prefix (FORMAT.md, Recovery)."""
    with mapped(info.path) as buf:
        scan = scan_segment(buf, info.header, info.path, prev_seq=prev_seq)
        if scan.bad_offset is None:
            return TailVerdict(scan, None, 0, 0, None)
        bad = scan.bad_offset
        later = find_valid_after(buf, bad, info.header.salt)
        size = len(buf)
    # A valid record written after `bad` was durable proves `bad` was acknowledged data.
    proof = [offset for offset, back in later if offset - back > bad]
    if proof:
        error = WalCorruptionError(info.path, bad, f"{scan.reason}; a valid record written after it follows "
                                                   f"at byte {proof[0]}")
        return TailVerdict(scan, None, 0, 0, error)
    return TailVerdict(scan, bad, size - bad, len(later), None)


def recover(directory: Path, report: RecoveryReport) -> tuple[Layout, ScanResult | None]:
    """Make the log consistent after any crash: drop temp files and orphans, truncate a torn tail.

    Returns the layout and the full scan of the unsealed tail (None when every segment is sealed).
    Raises WalCorruptionError / WalLayoutError when acknowledged data is damaged.
    """
    removed_any = False
    for tmp in sorted(directory.glob("*.wal.tmp")):
        tmp.unlink()
        report.removed.append(tmp)
        removed_any = True
    layout = load_layout(directory)
    if layout.orphan is not None:
        layout.orphan.unlink()
        report.removed.append(layout.orphan)
        removed_any = True
        layout = Layout(directory, layout.segments, None)
    if removed_any:
        fsync_dir(directory)
    if not layout.segments or layout.segments[-1].sealed:
        return layout, None
    tail = layout.segments[-1]
    prev_seq = layout.segments[-2].seal.last_seq if len(layout.segments) > 1 else None  # type: ignore[union-attr]
    verdict = judge_tail(tail, prev_seq)
    if verdict.corrupt is not None:
        raise verdict.corrupt
    if verdict.torn_at is not None:
        _truncate(tail.path, verdict.torn_at)
        report.truncated.append((tail.path, verdict.torn_at, verdict.torn_bytes, verdict.dropped_valid_records))
        log.warning("truncated torn tail of %s at byte %d: %d bytes, %d CRC-valid records dropped (%s)",
                    tail.path.name, verdict.torn_at, verdict.torn_bytes, verdict.dropped_valid_records,
                    verdict.scan.reason)
    if verdict.scan.count == 0:
        # Nothing of this segment was ever acknowledged: an interrupted roll. It must go, or the
        # header's first sequence would constrain the next append to a sequence nobody holds.
        tail.path.unlink()
        fsync_dir(directory)
        report.removed.append(tail.path)
        return Layout(directory, layout.segments[:-1], None), None
    size = verdict.torn_at if verdict.torn_at is not None else tail.size
    scan = verdict.scan
    sealed_tail = SegmentInfo(tail.path, tail.header, size, scan.seal, scan.seal_offset)
    layout = Layout(directory, [*layout.segments[:-1], sealed_tail], None)
    return layout, (None if scan.seal is not None else scan)


def _truncate(path: Path, size: int) -> None:
    """Cut a file and make the cut durable."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What repair moved aside."""

    moved: list[tuple[Path, Path, int]]  # segment, side file, offset
    kept_records: int
    quarantined_valid_records: int
    recovery: RecoveryReport


def repair(directory: Path | str, *, truncate_sealed: bool = False) -> RepairReport:
    """Keep every record before the first damage; move the damaged bytes and what follows to `.broken` files.

    Damage inside a sealed segment is refused (raised) unless `truncate_sealed`, because the
    segments after it are intact and the right fix is a restore from backup.
    """
    directory = Path(directory)
    lock = DirectoryLock(directory)
    try:
        return _repair_locked(directory, truncate_sealed)
    finally:
        lock.release()


def _repair_locked(directory: Path, truncate_sealed: bool) -> RepairReport:
    """repair() once the writer lock is held."""
    moved: list[tuple[Path, Path, int]] = []
    quarantined = 0
    try:
        layout = load_layout(directory)
    except WalLayoutError:
        raise  # a wrong set of segments needs an operator's judgement, not a truncation
    except WalCorruptionError as exc:
        # An unreadable header on the last segment: nothing in it can be trusted or read.
        paths = segment_paths(directory)
        if not paths or exc.segment != paths[-1]:
            raise
        destination = exc.segment.with_name(exc.segment.name + ".broken")
        os.replace(exc.segment, destination)
        fsync_dir(directory)
        moved.append((exc.segment, destination, 0))
        layout = load_layout(directory)
    damage = first_damage(layout)
    if damage is not None:
        segment, offset, valid_after = damage
        position = [info.path for info in layout.segments].index(segment)
        if position < len(layout.segments) - 1 and not truncate_sealed:
            raise WalCorruptionError(segment, offset, "damage inside a sealed segment: restore it from backup "
                                                      "or repair with truncate_sealed=True")
        offset = max(offset, HEADER_SIZE)
        side = segment.with_name(f"{segment.name}.{offset}.broken")
        with open(segment, "rb") as source, open(side, "wb") as target:
            source.seek(offset)
            while chunk := source.read(1 << 20):
                target.write(chunk)
            target.flush()
            os.fsync(target.fileno())
        moved.append((segment, side, offset))
        quarantined += valid_after
        for later in layout.segments[position + 1:]:
            destination = later.path.with_name(later.path.name + ".broken")
            os.replace(later.path, destination)
            moved.append((later.path, destination, 0))
        fsync_dir(directory)
        _truncate(segment, offset)
    report = RecoveryReport()
    layout, _tail = recover(directory, report)
    kept = sum(_count(info) for info in layout.segments)
    return RepairReport(moved, kept, quarantined, report)


def _count(info: SegmentInfo) -> int:
    """Records in a segment (from its seal, else by scanning)."""
    if info.seal is not None:
        return info.seal.count
    with mapped(info.path) as buf:
        return scan_segment(buf, info.header, info.path, prev_seq=None).count


def first_damage(layout: Layout) -> tuple[Path, int, int] | None:
    """(segment, offset, CRC-valid records after it) of the first damaged or torn byte, or None."""
    last_seq = None
    for info in layout.segments:
        with mapped(info.path) as buf:
            scan = scan_segment(buf, info.header, info.path, prev_seq=last_seq)
            bad = scan.bad_offset
            if bad is None and scan.seal is not None:
                try:
                    check_seal_hashes(info.path, buf, scan)
                except WalCorruptionError as exc:
                    bad = exc.offset
            if bad is not None:
                return info.path, bad, len(find_valid_after(buf, bad, info.header.salt))
        last_seq = scan.last_seq if scan.last_seq is not None else last_seq
    return None
