"""Binance's local-book procedure as a pure state machine: buffer diffs, apply a snapshot, replay, resync on a gap.

The caller (the live connector, the aggregator runner, `sq md book`) feeds deltas and snapshots
in arrival order and fetches a snapshot whenever a result says `needs_resync`; this module
never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from events.market import BookDelta, BookSnapshot
from processors.aggregator.book import ApplyResult, L2Book, Status, apply_batch
from processors.aggregator.book_events import apply_delta, apply_snapshot, delta_batch


@dataclass
class BookSync:
    """One symbol's book plus the diffs buffered while it waits for a snapshot."""

    book: L2Book = field(default_factory=L2Book)
    buffer: list[BookDelta] = field(default_factory=list)
    max_buffer: int = 10_000
    buffer_dropped: int = 0      # oldest buffered diffs dropped when the buffer was full
    gaps: int = 0
    crosses: int = 0
    snapshots: int = 0


def on_delta(sync: BookSync, delta: BookDelta) -> ApplyResult:
    """Apply a diff, or buffer it while the book waits for a snapshot; count gaps and crosses."""
    if not sync.book.synced:
        _buffer(sync, delta)
        return ApplyResult(Status.NOT_SYNCED, last_update_id=sync.book.last_update_id,
                           reason="waiting for a snapshot")
    result = apply_delta(sync.book, delta)
    if result.status is Status.GAP:
        sync.gaps += 1
        # The diff after the gap is still good data: keep it for after the next snapshot.
        _buffer(sync, delta)
    elif result.status is Status.CROSSED:
        sync.crosses += 1
    return result


def on_snapshot(sync: BookSync, snapshot: BookSnapshot) -> ApplyResult:
    """Replace the book with a snapshot, then replay buffered diffs under the first-diff rules."""
    apply_snapshot(sync.book, snapshot)
    sync.snapshots += 1
    buffered, sync.buffer = sync.buffer, []
    if not buffered:
        return ApplyResult(Status.APPLIED, last_update_id=sync.book.last_update_id)
    result = apply_batch(sync.book, delta_batch(sync.book, buffered))
    if result.status is Status.GAP:
        sync.gaps += 1
        # Keep what was not applied: a newer snapshot may cover it.
        sync.buffer = buffered[result.applied + result.stale:]
    elif result.status is Status.CROSSED:
        sync.crosses += 1
    return result


def _buffer(sync: BookSync, delta: BookDelta) -> None:
    if len(sync.buffer) >= sync.max_buffer:
        sync.buffer.pop(0)
        sync.buffer_dropped += 1
    sync.buffer.append(delta)


__all__ = ["BookSync", "on_delta", "on_snapshot"]
