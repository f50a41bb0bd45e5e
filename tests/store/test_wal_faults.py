"""Damaged logs: torn tails are truncated, damage to acknowledged bytes fails loudly with its offset."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from store import WalCorruptionError, WalFatalError, WalLayoutError, WalReader, WalWriter, repair
from store._format import HEADER_SIZE, RECORD_HEADER_SIZE, SEAL_SIZE
from tests.store._helpers import assert_survivors, entries_for, payload_for, read_all


def one_batch_per_record(directory: Path, count: int, **options: int) -> list[int]:
    """A contiguous log with each record in its own fsync; returns each record's offset in the tail."""
    with WalWriter.open(directory, contiguous=True, **options) as writer:
        for seq in range(1, count + 1):
            writer.append_batch(entries_for([seq]))
    tail = sorted(directory.glob("*.wal"))[-1]
    return [record.offset for record in WalReader(directory).records() if record.segment == tail]


def tail_segment(directory: Path) -> Path:
    return sorted(directory.glob("*.wal"))[-1]


def test_truncation_at_every_offset_recovers_complete_prefix(tmp_path: Path) -> None:
    source = tmp_path / "source"
    offsets = one_batch_per_record(source, 12)
    segment = tail_segment(source)
    data = segment.read_bytes()
    first_cut = offsets[-3]
    for cut in range(first_cut, len(data) + 1):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(source, work)
        (work / segment.name).write_bytes(data[:cut])
        complete = sum(1 for offset, end in zip(offsets, [*offsets[1:], len(data)], strict=True) if end <= cut)
        with WalWriter.open(work) as writer:
            assert writer.last_seq == complete
            assert writer.append(payload_for(complete + 1), ts=1) == complete + 1
        assert_survivors(work, complete + 1)
        shutil.rmtree(work)


@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("fill", ["zeros", "garbage"])
def test_damaged_sector_at_the_tail_is_truncated(tmp_path: Path, sector: int, fill: str) -> None:
    offsets = one_batch_per_record(tmp_path, 200)
    segment = tail_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    # The file's last aligned sector (and past the end, as a torn extending write leaves it).
    start = (len(data) + 511) // 512 * 512 - sector
    junk = bytes(sector) if fill == "zeros" else os.urandom(sector)
    data[start:start + sector] = junk
    segment.write_bytes(bytes(data))
    survivors = sum(1 for offset, nxt in zip(offsets, [*offsets[1:], 1 << 62], strict=True) if nxt <= start)
    with WalWriter.open(tmp_path) as writer:
        assert writer.last_seq == survivors and writer.recovery.truncated
    assert_survivors(tmp_path, survivors)


@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("fill", ["zeros", "garbage"])
def test_damaged_sector_in_the_middle_fails_loudly_with_its_offset(tmp_path: Path, sector: int, fill: str) -> None:
    offsets = one_batch_per_record(tmp_path, 300)
    segment = tail_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    start = len(data) // 2 // 512 * 512
    data[start:start + sector] = bytes(sector) if fill == "zeros" else os.urandom(sector)
    segment.write_bytes(bytes(data))
    first_hit = max(offset for offset in offsets if offset <= start)
    first_hit = first_hit if first_hit + 1 <= start + sector else first_hit
    with pytest.raises(WalCorruptionError) as caught:
        WalWriter.open(tmp_path)
    assert caught.value.segment == segment and caught.value.offset == first_hit
    with pytest.raises(WalCorruptionError) as verified:
        WalReader(tmp_path).verify()
    assert (verified.value.segment, verified.value.offset) == (segment, first_hit)


def test_every_single_bit_flip_in_a_tail_record_is_detected(tmp_path: Path) -> None:
    source = tmp_path / "source"
    offsets = one_batch_per_record(source, 6)
    segment = tail_segment(source)
    data = segment.read_bytes()
    target, after = offsets[3], offsets[4]
    original = read_all(source)
    for bit in range((after - target) * 8):
        flipped = bytearray(data)
        flipped[target + bit // 8] ^= 1 << (bit % 8)
        segment.write_bytes(bytes(flipped))
        with pytest.raises(WalCorruptionError) as caught:
            WalWriter.open(source)
        assert (caught.value.segment, caught.value.offset) == (segment, target), f"bit {bit}"
        with pytest.raises(WalCorruptionError):
            list(WalReader(source).records())
    segment.write_bytes(data)
    assert read_all(source) == original


def test_bit_flip_in_the_last_record_is_a_torn_tail_and_never_a_different_record(tmp_path: Path) -> None:
    offsets = one_batch_per_record(tmp_path, 4)
    segment = tail_segment(tmp_path)
    data = segment.read_bytes()
    for bit in range((len(data) - offsets[-1]) * 8):
        flipped = bytearray(data)
        flipped[offsets[-1] + bit // 8] ^= 1 << (bit % 8)
        segment.write_bytes(bytes(flipped))
        assert [seq for seq, _ in read_all(tmp_path)] == [1, 2, 3], f"bit {bit}"
    segment.write_bytes(data)


def test_every_single_bit_flip_in_a_sealed_segment_is_detected(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True, segment_size=600) as writer:
        for seq in range(1, 40):
            writer.append_batch(entries_for([seq]))
    sealed = sorted(tmp_path.glob("*.wal"))[1]
    data = sealed.read_bytes()
    seal_at = len(data) - SEAL_SIZE
    # Every bit of the header, of the first record and of the seal.
    first_record_end = HEADER_SIZE + RECORD_HEADER_SIZE + 60
    positions = [*range(0, min(first_record_end, seal_at)), *range(seal_at, len(data))]
    for position in positions:
        for bit in range(8):
            flipped = bytearray(data)
            flipped[position] ^= 1 << bit
            sealed.write_bytes(bytes(flipped))
            with pytest.raises(WalCorruptionError) as caught:
                WalReader(tmp_path).verify()
            assert caught.value.segment.name[:20] in (sealed.name[:20], sorted(tmp_path.glob("*.wal"))[2].name[:20])
    sealed.write_bytes(data)
    assert WalReader(tmp_path).verify().records == 39


def test_tampering_with_recomputed_crc_breaks_the_hash_chain(tmp_path: Path) -> None:
    from crc32c import crc32c

    from store._format import RECORD_HEADER, U32, mask

    with WalWriter.open(tmp_path, contiguous=True, segment_size=600) as writer:
        writer.append_batch(entries_for(range(1, 40)))
        writer.seal()
        writer.append_batch(entries_for(range(40, 45)))
    sealed = sorted(tmp_path.glob("*.wal"))[0]
    data = bytearray(sealed.read_bytes())
    length = RECORD_HEADER.unpack_from(data, HEADER_SIZE)[1]
    data[HEADER_SIZE + length - 2] ^= 0x01  # change a payload byte, then forge a valid CRC for it
    data[HEADER_SIZE:HEADER_SIZE + 4] = U32.pack(mask(crc32c(bytes(data[HEADER_SIZE + 4:HEADER_SIZE + length]))))
    sealed.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError) as caught:
        WalReader(tmp_path).verify()
    assert caught.value.segment == sealed and "differs from its seal" in caught.value.reason


def test_fdatasync_eio_is_fatal_sticky_unacknowledged_and_the_log_reopens(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    writer = WalWriter.open(tmp_path, contiguous=True)
    writer.append_batch(entries_for(range(1, 11)))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(WalFatalError) as caught:
        writer.append_batch(entries_for(range(11, 15)))
    assert (caught.value.operation, caught.value.errno, caught.value.durable_seq) == ("fdatasync", errno.EIO, 10)
    monkeypatch.undo()
    with pytest.raises(WalFatalError) as again:
        writer.append_batch(entries_for(range(11, 15)))  # the disk "works" again: still refused (fsyncgate)
    assert again.value is caught.value and writer.durable_seq == 10
    writer.close()
    with WalWriter.open(tmp_path) as reopened:
        assert reopened.last_seq in (10, 14)
    assert_survivors(tmp_path, 10)


def test_missing_segment_is_reported(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True, segment_size=600) as writer:
        writer.append_batch(entries_for(range(1, 80)))
        for start in range(80, 200, 10):
            writer.append_batch(entries_for(range(start, start + 10)))
    segments = sorted(tmp_path.glob("*.wal"))
    segments[2].unlink()
    with pytest.raises(WalLayoutError) as caught:
        WalWriter.open(tmp_path)
    assert caught.value.problem == "missing" and caught.value.segment == segments[3]
    segments[0].unlink()
    with pytest.raises(WalLayoutError) as first:
        WalReader(tmp_path).verify()
    assert first.value.problem == "missing" and first.value.segment == segments[1]


def test_duplicated_and_extra_segments_are_reported(tmp_path: Path) -> None:
    for name in ("a", "b"):
        with WalWriter.open(tmp_path / name, contiguous=True, segment_size=600) as writer:
            for start in range(1, 200, 10):
                writer.append_batch(entries_for(range(start, start + 10)))
    log = tmp_path / "a"
    segments = sorted(log.glob("*.wal"))
    copy = log / f"{int(segments[1].name[:20]) + 1:020d}.wal"
    shutil.copy(segments[1], copy)
    with pytest.raises(WalLayoutError) as duplicate:
        WalWriter.open(log)
    assert duplicate.value.problem in ("name", "duplicate") and duplicate.value.segment == copy
    copy.unlink()
    foreign = sorted((tmp_path / "b").glob("*.wal"))[2]
    shutil.copy(foreign, log / foreign.name)  # same name, another log's bytes
    with pytest.raises(WalLayoutError) as extra:
        WalReader(log).verify()
    assert extra.value.problem in ("missing", "extra")


def test_sequence_gap_between_segments_of_a_contiguous_log_is_reported(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append_batch(entries_for(range(1, 10)))
        writer.seal()
        writer._last_seq = 10  # a buggy writer skipping sequence 10
        writer.append_batch(entries_for(range(11, 15)))
    with pytest.raises(WalLayoutError) as caught:
        WalWriter.open(tmp_path)
    assert caught.value.problem == "gap" and caught.value.segment.name == f"{11:020d}.wal"


def test_repair_keeps_the_good_prefix_and_moves_the_rest_to_a_broken_file(tmp_path: Path) -> None:
    offsets = one_batch_per_record(tmp_path, 50)
    segment = tail_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[offsets[20] + 10] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError):
        WalWriter.open(tmp_path)
    report = repair(tmp_path)
    side = segment.with_name(f"{segment.name}.{offsets[20]}.broken")
    assert report.moved == [(segment, side, offsets[20])] and report.kept_records == 20
    assert report.quarantined_valid_records == 29
    assert side.read_bytes() == bytes(data[offsets[20]:])
    with WalWriter.open(tmp_path) as writer:
        assert writer.last_seq == 20
        writer.append_batch(entries_for([21]))
    assert_survivors(tmp_path, 21)


def test_repair_refuses_damage_inside_a_sealed_segment_unless_told_to_truncate(tmp_path: Path) -> None:
    with WalWriter.open(tmp_path, contiguous=True, segment_size=600) as writer:
        for start in range(1, 100, 5):
            writer.append_batch(entries_for(range(start, start + 5)))
    segments = sorted(tmp_path.glob("*.wal"))
    data = bytearray(segments[1].read_bytes())
    data[HEADER_SIZE + 20] ^= 0x04
    segments[1].write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError) as refused:
        repair(tmp_path)
    assert (refused.value.segment, refused.value.offset) == (segments[1], HEADER_SIZE)
    report = repair(tmp_path, truncate_sealed=True)
    assert len(report.moved) == len(segments) - 1
    kept = int(segments[1].name[:20]) - 1
    assert report.kept_records == kept and WalReader(tmp_path).verify().records == kept
