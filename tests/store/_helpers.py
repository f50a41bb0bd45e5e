"""Shared test helpers: deterministic payloads, whole-log reads, and a power-loss file shim."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from store import Entry, WalReader
from store._files import SegmentFile

SUBJECT = "sq.ord.intent.ACC1"


def payload_for(seq: int) -> bytes:
    """A payload that is a pure function of its sequence, of varying length, so a survivor is checkable."""
    digest = hashlib.blake2b(seq.to_bytes(8, "little"), digest_size=32).digest()
    return b'{"seq":%d,"pad":"%s"}' % (seq, digest.hex()[: seq % 61].encode())


def entries_for(seqs: range | list[int]) -> list[Entry]:
    """Entries whose payload and time derive from the sequence."""
    return [Entry(payload_for(seq), 1_700_000_000_000_000_000 + seq * 1000, SUBJECT, "OrderIntent", seq)
            for seq in seqs]


def read_all(directory: Path) -> list[tuple[int, bytes]]:
    """Every readable record as (seq, payload bytes); none if a crash came before the directory existed."""
    if not directory.exists():
        return []
    return [(record.seq, bytes(record.payload)) for record in WalReader(directory).records()]


def assert_survivors(directory: Path, acked: int) -> list[tuple[int, bytes]]:
    """Records 1..n are exactly the payloads written, with n ≥ every acknowledged sequence."""
    records = read_all(directory)
    seqs = [seq for seq, _ in records]
    assert seqs == list(range(1, len(seqs) + 1)), "sequences must be contiguous from 1, without duplicates"
    assert len(seqs) >= acked, f"acknowledged sequence {acked} lost; log ends at {len(seqs)}"
    for seq, payload in records:
        assert payload == payload_for(seq), f"record {seq} differs from what was written"
    return records


class PowerLoss(BaseException):
    """Raised by the shim at the crash instant (BaseException, so the writer cannot treat it as an I/O error)."""


class PowerLossDisk:
    """SQLite crash-VFS in spirit: writes sit in a pretend page cache until synced; a crash keeps,
    drops or garbles each unsynced write."""

    def __init__(self, rng: random.Random, *, crash_after: int) -> None:
        self.rng = rng
        self.remaining = crash_after
        self.files: list[CrashFile] = []
        self.crashed = False

    def opener(self, path: Path) -> SegmentFile:
        """The opener handed to WalWriter.open."""
        handle = CrashFile(self, path)
        self.files.append(handle)
        return handle

    def tick(self) -> None:
        """Count an operation; at the chosen one, the power fails."""
        if self.crashed:
            raise PowerLoss
        self.remaining -= 1
        if self.remaining <= 0:
            self.crashed = True
            raise PowerLoss

    def crash(self) -> None:
        """Decide the fate of every unsynced write and put the result on the real disk."""
        for handle in self.files:
            handle.settle(self.rng)


class CrashFile:
    """One file behind the shim."""

    def __init__(self, disk: PowerLossDisk, path: Path) -> None:
        self.disk = disk
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.durable = os.fstat(self.fd).st_size
        self.pending: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.disk.tick()
        self.pending.append(bytes(data))

    def sync(self) -> None:
        self.disk.tick()
        data = b"".join(self.pending)
        os.pwrite(self.fd, data, self.durable)
        self.durable += len(data)
        self.pending.clear()

    def truncate(self, size: int) -> None:
        self.sync()
        os.ftruncate(self.fd, size)
        self.durable = size

    def close(self) -> None:
        """Closing does not sync: unsynced writes stay at the mercy of the crash."""

    def settle(self, rng: random.Random) -> None:
        """Apply keep / drop / garble to each unsynced write, in order; trailing drops shorten the file."""
        if not self.pending:  # fully synced: the crash cannot touch it (and the inode may be renamed)
            os.close(self.fd)
            return
        image = bytearray()
        kept_end = 0
        for data in self.pending:
            fate = rng.choice(("keep", "drop", "garble", "partial"))
            if fate == "keep":
                image += data
                kept_end = len(image)
            elif fate == "drop":
                image += bytes(len(data))
            elif fate == "garble":
                image += rng.randbytes(len(data))
                kept_end = len(image)
            else:
                cut = rng.randrange(len(data) + 1)
                image += data[:cut] + bytes(len(data) - cut)
                kept_end = len(image) - (len(data) - cut)
        os.pwrite(self.fd, bytes(image[:kept_end]), self.durable)
        os.ftruncate(self.fd, self.durable + kept_end)
        os.close(self.fd)
        self.pending.clear()
