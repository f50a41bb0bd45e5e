"""`sq store backup` / `sq store restore`: copy sealed segments with their hashes verified, both ways.

A backup directory mirrors the WAL root: `DEST/<STREAM>/<segment>.wal` plus `DEST/MANIFEST.json`,
which lists every file with its size and SHA-256 and the segment's seal (chain hash, sequences,
record count). Only sealed segments are copied: they are immutable, and each one's seal holds
a SHA-256 of its bytes chained to the previous segment's, so a copy can be proven whole. The
unsealed tail is not backed up (it is still being written; JetStream holds those events and
the recorder re-records them after a restore). Index files are not copied: a reader rebuilds
them identically.

Every copy is checked against the source segment's seal (whole-body CRC32C and SHA-256) while
it is read, written to a temp file, fsynced, renamed and its directory fsynced. A backup is
incremental: a segment whose copy in DEST still hashes to the manifest's SHA-256 is skipped,
and a damaged copy is simply copied again. A restore first verifies the whole backup (each
file's SHA-256, then every CRC, seal and the hash chain), refuses a target stream directory that
holds segments unless forced (then it is moved aside, never deleted), and verifies the
restored log again after copying.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from crc32c import crc32c

from store._files import DirectoryLock, fsync_dir, write_file_atomically
from store._progress import Progress
from store._segments import SegmentInfo, load_layout
from store.errors import WalCorruptionError, WalError
from store.reader import WalReader
from store.replay import recorded_streams

MANIFEST = "MANIFEST.json"
ASIDE = ".pre-restore"
_CHUNK = 4 << 20


class BackupFile(msgspec.Struct, frozen=True):
    """One backed-up segment: its file and what its seal says."""

    name: str
    size: int
    sha256: str
    chain_hash: str
    first_seq: int
    last_seq: int
    records: int


class BackupManifest(msgspec.Struct):
    """Every file of a backup, per stream, in sequence order."""

    version: int = 1
    updated_ns: int = 0
    streams: dict[str, list[BackupFile]] = msgspec.field(default_factory=dict)


class BackupError(WalError):
    """A backup file is missing or differs from its manifest entry; `path` and `reason` say which and how."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RestoreRefused(WalError):
    """The restore target already holds segments and `force` was not given."""

    def __init__(self, target: Path) -> None:
        super().__init__(f"{target} already holds WAL segments; pass --force to move them aside and restore")
        self.target = target


@dataclass(slots=True)
class BackupReport:
    """Files copied and skipped (already in DEST with a matching hash), and tails left out."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unsealed: list[str] = field(default_factory=list)
    bytes_copied: int = 0


@dataclass(slots=True)
class RestoreReport:
    """Streams restored, where replaced directories went, and the verified chain hash per stream."""

    streams: dict[str, str] = field(default_factory=dict)
    files: int = 0
    records: int = 0
    moved_aside: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a whole file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(directory: Path) -> BackupManifest:
    """A backup's manifest, or an empty one for a new backup directory."""
    path = directory / MANIFEST
    return msgspec.json.decode(path.read_bytes(), type=BackupManifest) if path.exists() else BackupManifest()


def _save_manifest(directory: Path, manifest: BackupManifest) -> None:
    manifest.updated_ns = time.time_ns()
    write_file_atomically(directory / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest), indent=1),
                          durable=True)


def _copy_checked(info: SegmentInfo, target: Path) -> tuple[int, str]:
    """Copy a sealed segment, checking its body against its seal as it is read; return (size, SHA-256)."""
    assert info.seal is not None and info.seal_offset is not None
    whole = hashlib.sha256()
    body = hashlib.sha256()
    body_crc = 0
    position = 0
    tmp = target.with_name(f"{target.name}.tmp")
    with open(info.path, "rb") as source, open(tmp, "wb") as out:
        while chunk := source.read(_CHUNK):
            whole.update(chunk)
            inside = chunk[: max(0, info.seal_offset - position)]
            body.update(inside)
            body_crc = crc32c(inside, body_crc)
            out.write(chunk)
            position += len(chunk)
        out.flush()
        if position != info.size:
            raise WalCorruptionError(info.path, position, f"segment changed size while copied ({info.size} bytes)")
        if body_crc != info.seal.body_crc or body.digest() != info.seal.chain_hash:
            tmp.unlink()
            raise WalCorruptionError(info.path, info.seal_offset, "segment bytes differ from its seal's CRC / SHA-256")
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return position, whole.hexdigest()


def backup(wal_root: Path | str, dest: Path | str, *, streams: list[str] | None = None,
           progress: Progress | None = None) -> BackupReport:
    """Copy every sealed segment not already in DEST (by SHA-256) and update the manifest."""
    root, out = Path(wal_root), Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    report = BackupReport()
    for stream in streams or recorded_streams(root):
        layout = load_layout(root / stream)  # checks names, seals and the hash chain between segments
        (out / stream).mkdir(exist_ok=True)
        entries = {entry.name: entry for entry in manifest.streams.get(stream, [])}
        for info in layout.segments:
            key = f"{stream}/{info.path.name}"
            if info.seal is None:
                report.unsealed.append(key)
                continue
            target = out / stream / info.path.name
            known = entries.get(info.path.name)
            if known is not None and known.chain_hash == info.seal.chain_hash.hex() and target.exists() \
                    and sha256_file(target) == known.sha256:
                report.skipped.append(key)
                continue
            size, digest = _copy_checked(info, target)
            entries[info.path.name] = BackupFile(info.path.name, size, digest, info.seal.chain_hash.hex(),
                                                 info.seal.first_seq, info.seal.last_seq, info.seal.count)
            report.copied.append(key)
            report.bytes_copied += size
            if progress is not None:
                progress.add(info.seal.count, size)
        fsync_dir(out / stream)
        manifest.streams[stream] = sorted(entries.values(), key=lambda entry: entry.name)
        _save_manifest(out, manifest)
    return report


def verify_backup(src: Path | str, *, streams: list[str] | None = None) -> dict[str, str | None]:
    """Check every file against the manifest, then every CRC, seal and the chain; return each stream's chain hash.

    Raises BackupError for a missing or altered file, WalCorruptionError for damage the
    manifest cannot see (a file whose manifest entry was rewritten to match).
    """
    directory = Path(src)
    manifest = load_manifest(directory)
    if not manifest.streams:
        raise BackupError(directory / MANIFEST, "no manifest, or it lists no stream")
    chains: dict[str, str | None] = {}
    for stream in streams or sorted(manifest.streams):
        entries = manifest.streams.get(stream)
        if entries is None:
            raise BackupError(directory / stream, "stream is not in the backup manifest")
        listed = {entry.name for entry in entries}
        for path in sorted((directory / stream).glob("*.wal")):
            if path.name not in listed:
                raise BackupError(path, "segment file is not in the manifest")
        for entry in entries:
            path = directory / stream / entry.name
            if not path.exists():
                raise BackupError(path, "missing")
            if path.stat().st_size != entry.size:
                raise BackupError(path, f"size {path.stat().st_size} differs from the manifest's {entry.size}")
            if sha256_file(path) != entry.sha256:
                raise BackupError(path, "SHA-256 differs from the manifest's")
        report = WalReader(directory / stream, persist_index=False).verify()
        chain = report.chain_hash.hex() if report.chain_hash else None
        if entries and chain != entries[-1].chain_hash:
            raise BackupError(directory / stream / entries[-1].name, "chain hash differs from the manifest's")
        chains[stream] = chain
    return chains


def restore(src: Path | str, wal_root: Path | str, *, streams: list[str] | None = None, force: bool = False,
            progress: Progress | None = None) -> RestoreReport:
    """Verify the backup, copy it into WAL_ROOT, and verify the restored logs; refuse non-empty targets unless forced."""
    source, root = Path(src), Path(wal_root)
    manifest = load_manifest(source)
    chosen = streams or sorted(manifest.streams)
    verify_backup(source, streams=chosen)
    for stream in chosen:
        target = root / stream
        if target.exists() and any(target.glob("*.wal")) and not force:
            raise RestoreRefused(target)
    report = RestoreReport()
    root.mkdir(parents=True, exist_ok=True)
    for stream in chosen:
        target = root / stream
        if target.exists() and any(target.iterdir()):
            DirectoryLock(target).release()  # refuses (WalLockedError) while a writer still has the log open
            aside = root / ASIDE / f"{stream}-{time.time_ns()}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, aside)
            report.moved_aside.append(str(aside))
        target.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(target)
        try:
            for entry in manifest.streams[stream]:
                tmp = target / f"{entry.name}.tmp"
                digest = hashlib.sha256()
                with open(source / stream / entry.name, "rb") as handle, open(tmp, "wb") as out:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != entry.sha256:
                    tmp.unlink()
                    raise BackupError(source / stream / entry.name, "SHA-256 changed while restoring")
                os.replace(tmp, target / entry.name)
                report.files += 1
                report.records += entry.records
                if progress is not None:
                    progress.add(entry.records, entry.size)
            fsync_dir(target)
        finally:
            lock.release()
        verified = WalReader(target, persist_index=False).verify()
        chain = verified.chain_hash.hex() if verified.chain_hash else ""
        if manifest.streams[stream] and chain != manifest.streams[stream][-1].chain_hash:
            raise WalCorruptionError(target, 0, "restored chain hash differs from the backup manifest's")
        report.streams[stream] = chain
    return report


__all__ = ["MANIFEST", "BackupError", "BackupFile", "BackupManifest", "BackupReport", "RestoreRefused",
           "RestoreReport", "backup", "load_manifest", "restore", "sha256_file", "verify_backup"]
