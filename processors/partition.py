"""Scale-out by account: several instances of one processor share the work, each owning a slice of accounts.

The broker adds a bucket token to every order-path subject (events.partitions: `sq.ord.intent.<p>.<account>`,
p = FNV-1a(account) mod 16). An instance started with `--partition K/N` owns the buckets p with p mod N == K:
its consumers filter on them, so the server delivers it only its accounts' events, plus everything every
instance needs (market data, timers, circuit breakers, control events, which it sorts by account itself).
Outputs keep their deterministic ids, so the split needs no coordination beyond the flag. Account-wide
checks stay exact (an account lives in one partition); a venue-reject burst breaker counts only the
reports of its own accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from events.partitions import BUCKETS, bucket, partition_filters, place
from events.subjects import ALL_ACCOUNTS

_SCOPED_CONTROL = ("sq.ctl.killswitch.", "sq.ctl.state.", "sq.ctl.limits.")


class InvalidPartition(ValueError):
    """A --partition value is not K/N with 0 <= K < N <= BUCKETS."""

    def __init__(self, value: str) -> None:
        super().__init__(f"partition {value!r} must be K/N with whole numbers 0 <= K < N <= {BUCKETS}, e.g. 0/2")
        self.value = value


@dataclass(frozen=True)
class Partition:
    """This instance's share: index K of N."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, value: str) -> Partition:
        """Read `K/N`."""
        index, slash, count = value.partition("/")
        if not slash or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count) <= BUCKETS:
            raise InvalidPartition(value)
        return cls(int(index), int(count))

    @property
    def label(self) -> str:
        """How snapshots name the share: `K/N`, with the bucket scheme once there is more than one instance."""
        return f"{self.index}/{self.count}" if self.count == 1 else f"{self.index}/{self.count}b{BUCKETS}"

    def owns(self, subject: str) -> bool:
        """Whether this instance handles `subject` (the broker's bucket token decides when there is one)."""
        if self.count == 1:
            return True
        placed = place(subject)
        if placed is not None:
            return placed.owner_bucket % self.count == self.index
        if not subject.startswith(_SCOPED_CONTROL):
            return True
        account = subject.rsplit(".", 1)[-1]
        return account == ALL_ACCOUNTS or bucket(account) % self.count == self.index

    def filters(self, patterns: Sequence[str]) -> list[str]:
        """The server-side filters for a core reading `patterns`: only this instance's buckets of each family."""
        return partition_filters(patterns, self.index, self.count)
