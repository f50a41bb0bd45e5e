"""Client order ids in use for the dedupe window (a day by default), at about 24 bytes each.

Risk refuses an intent whose client order id another intent of the account used within the window.
At 100 intents a second a day is 8.6 million ids: as a dict of strings that is some 1.5 GB, so risk's
memory would grow with every order all day. Here an id is kept as a 64-bit BLAKE2b hash of it, with
a 64-bit fingerprint of the intent that used it and that intent's ts. The ids of the current slice
of event time (at most five minutes) sit in a dict; when a slice closes they are merged into three
sorted numpy arrays, and whatever has aged out of the window is dropped in the same pass. An id is
remembered for at least the window and less than the window plus one slice (as processors.recent),
and time is the events' ts, so a rebuild from the WAL forgets exactly what the live run forgot.

Two different client order ids of one account share a hash with odds of 2^-64 a pair; the second
would be refused as a reuse, which the client sees and answers with a new id.
"""

from __future__ import annotations

import hashlib

import numpy as np

MAX_SLICE_NS = 300 * 1_000_000_000
_EMPTY_U64 = np.empty(0, dtype=np.uint64)


def id_hash(text: str) -> int:
    """64 bits of BLAKE2b of an id: stable across processes (unlike hash()), so snapshots stay valid."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ClientOrderIds:
    """Which intent (fingerprint, ts) last used each client order id of one account within the window."""

    __slots__ = ("window_ns", "slice_ns", "_slice", "_open", "_keys", "_fingerprints", "_ts")

    def __init__(self, window_ns: int) -> None:
        if window_ns <= 0:
            raise ValueError(f"window_ns ({window_ns}) must be greater than 0")
        self.window_ns = window_ns
        self.slice_ns = max(1, min(window_ns // 4, MAX_SLICE_NS))
        self._slice = -1                                   # the open slice's number (ts // slice_ns)
        self._open: dict[int, tuple[int, int]] = {}        # id hash -> (fingerprint, ts), the open slice
        self._keys = _EMPTY_U64                            # closed slices, sorted by id hash, one entry each
        self._fingerprints = _EMPTY_U64
        self._ts = np.empty(0, dtype=np.int64)

    def get(self, client_order_id: str) -> tuple[int, int] | None:
        """(fingerprint, ts) of the intent that last used the id, or None when none did within the window."""
        key = id_hash(client_order_id)
        found = self._open.get(key)
        if found is not None:
            return found
        at = int(self._keys.searchsorted(np.uint64(key)))
        if at < len(self._keys) and int(self._keys[at]) == key:
            return int(self._fingerprints[at]), int(self._ts[at])
        return None

    def set(self, client_order_id: str, fingerprint: int, ts: int) -> None:
        """Record that the intent with `fingerprint` used the id at event time `ts` (replacing an earlier use)."""
        number = ts // self.slice_ns
        if number > self._slice:
            self._close(number)
        self._open[id_hash(client_order_id)] = (fingerprint, ts)

    def _close(self, number: int) -> None:
        """Merge the open slice into the closed arrays, dropping entries a full window before the new slice."""
        horizon = number * self.slice_ns - self.window_ns
        opened = {key: value for key, value in self._open.items() if value[1] >= horizon}
        if opened or len(self._keys):
            keep = self._ts >= horizon
            keys, fingerprints, stamps = self._keys[keep], self._fingerprints[keep], self._ts[keep]
            if opened:
                new_keys = np.fromiter(opened, dtype=np.uint64, count=len(opened))
                order = np.argsort(new_keys)
                new_keys = new_keys[order]
                values = np.array(list(opened.values()), dtype=np.uint64).reshape(-1, 2)[order]
                # An id used again replaces its older entry (binary search, not a sort of everything kept).
                at = np.searchsorted(keys, new_keys)
                found = at < len(keys)
                found[found] = keys[at[found]] == new_keys[found]
                stale = at[found]
                keys, fingerprints, stamps = (np.delete(keys, stale), np.delete(fingerprints, stale),
                                              np.delete(stamps, stale))
                at = np.searchsorted(keys, new_keys)
                keys = np.insert(keys, at, new_keys)
                fingerprints = np.insert(fingerprints, at, values[:, 0])
                stamps = np.insert(stamps, at, values[:, 1].astype(np.int64))
            self._keys, self._fingerprints, self._ts = keys, fingerprints, stamps
        self._open = {}
        self._slice = number

    def __len__(self) -> int:
        return len(self._open) + len(self._keys)


__all__ = ["MAX_SLICE_NS", "ClientOrderIds", "id_hash"]
