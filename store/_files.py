"""The few file operations the WAL needs, behind a seam that fault-injection tests can replace."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from store.errors import WalLockedError


class SegmentFile(Protocol):
    """An append-only file as the writer uses it; tests substitute a power-loss simulation."""

    def write(self, data: bytes | memoryview) -> None:
        """Append all of `data` (looping over short writes)."""

    def sync(self) -> None:
        """Make everything written so far durable (fdatasync)."""

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes."""

    def close(self) -> None:
        """Release the file."""


Opener = Callable[[Path], SegmentFile]


class OsFile:
    """A segment file on the real file system, appended with os.write and synced with os.fdatasync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # O_APPEND: a retried or concurrent write can never land in the middle of the file.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes | memoryview) -> None:
        """Append all of `data`; os.write may write less than asked (signals, a nearly full disk)."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sync(self) -> None:
        """fdatasync: the data and the size, not the mtime."""
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        """ftruncate then fsync, so the cut is as durable as the data it removed was."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self._fd)


def open_os_file(path: Path) -> SegmentFile:
    """The default opener."""
    return OsFile(path)


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so a created, renamed or removed entry survives power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes, *, durable: bool) -> None:
    """Write `data` to `path` through a temp file and a rename, so readers never see half of it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class DirectoryLock:
    """An exclusive flock on DIR/LOCK held for the life of a writer."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(self._fd, 64, 0).decode("ascii", "replace").strip()
            os.close(self._fd)
            raise WalLockedError(directory, holder) from exc
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
