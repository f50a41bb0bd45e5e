"""The segment-CRC write-ahead log, the source of truth: open a writer, read records or Arrow batches, verify, repair."""

from store.appender import AsyncWalAppender
from store.errors import (
    WalClosedError,
    WalCorruptionError,
    WalError,
    WalFatalError,
    WalLayoutError,
    WalLockedError,
    WalModeError,
    WalRecordError,
    WalSequenceError,
)
from store.reader import Record, VerifyReport, WalReader
from store.recovery import RecoveryReport, RepairReport, repair
from store.writer import DEFAULT_SEGMENT_SIZE, Entry, WalWriter, WriteTicket

__all__ = [
    "DEFAULT_SEGMENT_SIZE", "AsyncWalAppender", "Entry", "Record", "RecoveryReport", "RepairReport",
    "VerifyReport", "WalClosedError", "WalCorruptionError", "WalError", "WalFatalError", "WalLayoutError",
    "WalLockedError", "WalModeError", "WalReader", "WalRecordError", "WalSequenceError", "WalWriter",
    "WriteTicket", "repair",
]
