"""The segment-CRC write-ahead log (the source of truth), its recorder and replay."""

from store.wal import (
    DEFAULT_SEGMENT_SIZE,
    AsyncWalAppender,
    Entry,
    Record,
    RecoveryReport,
    RepairReport,
    VerifyReport,
    WalClosedError,
    WalCorruptionError,
    WalError,
    WalFatalError,
    WalLayoutError,
    WalLockedError,
    WalModeError,
    WalReader,
    WalRecordError,
    WalSequenceError,
    WalWriter,
    WriteTicket,
    repair,
)

__all__ = [
    "DEFAULT_SEGMENT_SIZE", "AsyncWalAppender", "Entry", "Record", "RecoveryReport", "RepairReport",
    "VerifyReport", "WalClosedError", "WalCorruptionError", "WalError", "WalFatalError", "WalLayoutError",
    "WalLockedError", "WalModeError", "WalReader", "WalRecordError", "WalSequenceError", "WalWriter",
    "WriteTicket", "repair",
]
