"""Errors the WAL raises; every value a caller might act on is an attribute, never only text."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

LayoutProblem = Literal["name", "header", "missing", "duplicate", "extra", "gap", "overlap", "unsealed", "mode"]


class WalError(Exception):
    """Base of every WAL error."""


class WalCorruptionError(WalError):
    """Bytes that were acknowledged as durable fail their checks; nothing after them is trusted."""

    def __init__(self, segment: Path | str, offset: int, reason: str) -> None:
        super().__init__(f"{Path(segment).name} at byte {offset}: {reason}")
        self.segment = Path(segment)
        self.offset = offset
        self.reason = reason


class WalLayoutError(WalCorruptionError):
    """The set of segments is wrong: a missing, duplicated, extra or unsealed segment, or a gap."""

    def __init__(self, segment: Path | str, problem: LayoutProblem, reason: str, *, offset: int = 0) -> None:
        super().__init__(segment, offset, f"{problem}: {reason}")
        self.problem = problem


class WalFatalError(WalError):
    """An I/O error stopped the writer for good (fsyncgate): nothing from this batch on is acknowledged."""

    def __init__(self, operation: str, path: Path | str, cause: BaseException, *, durable_seq: int | None) -> None:
        errno_value = getattr(cause, "errno", None)
        super().__init__(
            f"WAL writer stopped: {operation} on {path} failed ({cause}); "
            f"records after sequence {durable_seq} are not acknowledged; reopen the log to recover"
        )
        self.operation = operation
        self.path = Path(path)
        self.errno = errno_value
        self.cause = cause
        self.durable_seq = durable_seq


class WalLockedError(WalError):
    """Another writer holds the log's lock."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(f"{directory} is locked by another writer ({holder or 'unknown holder'})")
        self.directory = directory
        self.holder = holder


class WalModeError(WalError):
    """The log was created with the other sequence mode (contiguous or strictly increasing)."""

    def __init__(self, directory: Path, *, requested: bool, found: bool) -> None:
        def name(contiguous: bool) -> str:
            return "contiguous" if contiguous else "strictly increasing"

        super().__init__(f"{directory} holds a {name(found)} log; opened as {name(requested)}")
        self.directory = directory
        self.requested = requested
        self.found = found


class WalRecordError(WalError, ValueError):
    """An entry handed to append is invalid; the batch was refused before anything was written."""

    def __init__(self, index: int, field: str, value: object, reason: str) -> None:
        shown = value if not isinstance(value, bytes | bytearray | memoryview) else f"<{len(value)} bytes>"
        super().__init__(f"entry {index}: {field} {shown!r} {reason}")
        self.index = index
        self.field = field
        self.value = value
        self.reason = reason


class WalSequenceError(WalRecordError):
    """A sequence number breaks the log's order (strictly increasing, or +1 when contiguous)."""

    def __init__(self, index: int, seq: int, last_seq: int | None, *, contiguous: bool) -> None:
        rule = f"must be {last_seq + 1}" if contiguous and last_seq is not None else f"must be above {last_seq}"
        super().__init__(index, "seq", seq, f"{rule} (contiguous={contiguous})")
        self.seq = seq
        self.last_seq = last_seq
        self.contiguous = contiguous


class WalClosedError(WalError):
    """The writer was closed."""
