"""Scale-out by subject: several instances of one processor share the work, each owning a slice of accounts.

The account is the last token of every order-path subject (`sq.ord.intent.<account>`,
`sq.exec.report.<venue>.<account>`, `sq.ctl.killswitch.<account|all>`, …). An instance started
with `--partition K/N` handles the subjects whose account hashes to K modulo N, plus everything
every instance needs: market data, timers, circuit breakers and the `all` scope of control
events. Outputs keep their deterministic ids, so the split needs no coordination beyond the flag.
Account-wide checks stay exact (an account lives in one partition); a venue-reject burst breaker
counts only the reports of its own accounts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

_ACCOUNT_SCOPED = ("sq.ord.", "sq.risk.", "sq.exec.", "sq.pf.", "sq.ctl.killswitch.", "sq.ctl.state.",
                   "sq.ctl.limits.")
ALL_SCOPE = "all"


class InvalidPartition(ValueError):
    """A --partition value is not K/N with 0 <= K < N."""

    def __init__(self, value: str) -> None:
        super().__init__(f"partition {value!r} must be K/N with whole numbers 0 <= K < N, e.g. 0/2")
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
        if not slash or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
            raise InvalidPartition(value)
        return cls(int(index), int(count))

    def owns(self, subject: str) -> bool:
        """Whether this instance handles `subject`."""
        if self.count == 1 or not subject.startswith(_ACCOUNT_SCOPED):
            return True
        account = subject.rsplit(".", 1)[-1]
        return account == ALL_SCOPE or zlib.crc32(account.encode()) % self.count == self.index
