"""A rate-limited progress line on stderr for long replays, exports, backups and restores."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts records (and bytes) and redraws one line at most every `interval` seconds.

    Disabled unless `enabled` (the CLI passes "stderr is a TTY or --progress"); a disabled
    Progress still counts, so callers can report totals from it.
    """

    def __init__(self, label: str, *, enabled: bool, total: int | None = None, interval: float = 0.5,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.total = total
        self.count = 0
        self.bytes = 0
        self._interval = interval
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._start = time.monotonic()
        self._next = self._start + interval
        self._drawn = False

    def add(self, count: int = 1, nbytes: int = 0) -> None:
        """Count work done; redraw when the interval has passed."""
        self.count += count
        self.bytes += nbytes
        if self.enabled and time.monotonic() >= self._next:
            self._draw(final=False)

    def done(self) -> None:
        """Draw the final line (when enabled)."""
        if self.enabled:
            self._draw(final=True)

    def _draw(self, *, final: bool) -> None:
        now = time.monotonic()
        self._next = now + self._interval
        elapsed = max(now - self._start, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        pct = f" {100 * self.count / self.total:5.1f}%" if self.total else ""
        line = (f"{self.label}: {self.count:,}{of}{pct} records, {self.bytes / 1e6:,.1f} MB, "
                f"{self.count / elapsed:,.0f}/s, {elapsed:,.1f}s")
        # On a terminal the line is redrawn in place; in a log file every update is its own line.
        end = "\n" if final or not self._tty else ""
        prefix = "\r\x1b[K" if self._tty else ""
        self._stream.write(prefix + line + end)
        self._stream.flush()
        self._drawn = True
