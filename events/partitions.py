"""Account partitions on the wire: the broker adds a partition token to every account-scoped subject.

nats-server's subject mappings (`mapping_config()`, which `sq broker` loads and deploy/k8s/nats.yaml
carries) turn `sq.ord.intent.<account>` into `sq.ord.intent.<p>.<account>` as it is published, where
`p` is FNV-1a(account) mod BUCKETS, nats-server's own `partition` function. An instance started with
`--partition K/N` owns the buckets p with p mod N == K and has its consumers filter on them, so the
server sends it only its accounts' events.

Publishers keep using the plain subject (`sq.ord.intent.<account>`); the token is the broker's. Readers
accept both forms: history recorded before the mapping, or a broker run without it, carries the plain
subject, and then the owner is worked out from the account on the client. Control subjects stay
unpartitioned: every instance needs the `all` scope, and they are rare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

BUCKETS = 16
# Every order-path subject family: the tokens before the account (`*` is the venue, or a port
# kind). Each family has its own third token, so no bucketed subject of one looks like another's.
ACCOUNT_FAMILIES: tuple[str, ...] = (
    "sq.ord.intent", "sq.ord.cancel", "sq.risk.decision", "sq.exec.child.*", "sq.exec.report.*", "sq.exec.tca",
    "sq.exec.parent", "sq.rpt.trade", "sq.pf.targets", "sq.pf.rebalance", "sq.pf.break", "sq.pf.venuepos.*")
# Every subject under these is in one of the families above (tests/events/test_partitions.py checks
# it against the event catalogue), so a core reading `sq.exec.>` reads exactly its families.
ACCOUNT_KINDS = ("ord", "risk", "exec", "rpt", "pf")
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def bucket(account: str) -> int:
    """The account's bucket, as nats-server's `{{partition(BUCKETS, …)}}` computes it (FNV-1a, 32 bits)."""
    value = _FNV_OFFSET
    for byte in account.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value % BUCKETS


@dataclass(frozen=True)
class Placed:
    """An account-scoped subject taken apart: its family, account and bucket (None: the plain form)."""

    family: str
    account: str
    token: int | None

    @property
    def owner_bucket(self) -> int:
        """The bucket whose instance handles it: the broker's token when there is one."""
        return bucket(self.account) if self.token is None else self.token


_FAMILIES = [(family, tuple(family.split("."))) for family in ACCOUNT_FAMILIES]


@lru_cache(maxsize=8192)
def place(subject: str) -> Placed | None:
    """The subject's family, account and bucket token, or None when it is not account-scoped."""
    tokens = subject.split(".")
    for family, head in _FAMILIES:
        size = len(head)
        if len(tokens) not in (size + 1, size + 2) or tokens[2] != head[2]:
            continue
        if any(part != "*" and part != tokens[index] for index, part in enumerate(head)):
            continue
        if len(tokens) == size + 1:
            return Placed(family, tokens[-1], None)
        if tokens[size].isdigit() and int(tokens[size]) < BUCKETS:
            return Placed(family, tokens[-1], int(tokens[size]))
    return None


@lru_cache(maxsize=8192)
def on_wire(subject: str) -> str:
    """The subject as the broker stores it: the bucket token added before the account of an order-path subject."""
    placed = place(subject)
    if placed is None or placed.token is not None:
        return subject
    head, _, account = subject.rpartition(".")
    return f"{head}.{bucket(account)}.{account}"


@lru_cache(maxsize=8192)
def plain(subject: str) -> str:
    """The subject as published and documented: any bucket token taken out."""
    placed = place(subject)
    if placed is None or placed.token is None:
        return subject
    head, _, account = subject.rpartition(".")
    return f"{head.rpartition('.')[0]}.{account}"


def mappings() -> dict[str, str]:
    """nats-server subject mappings that add the bucket token, one per family."""
    out = {}
    for family, head in _FAMILIES:
        wildcards = head.count("*")
        source = family + ".*"
        destination = family.split(".")[:3] + [f"{{{{wildcard({n})}}}}" for n in range(1, wildcards + 1)]
        account = wildcards + 1
        out[source] = ".".join(destination + [f"{{{{partition({BUCKETS},{account})}}}}", f"{{{{wildcard({account})}}}}"])
    return out


def mapping_config() -> str:
    """The `mappings` block of a nats-server configuration file."""
    lines = [f'  "{source}": "{destination}"' for source, destination in mappings().items()]
    return "mappings {\n" + "\n".join(lines) + "\n}\n"


def _covered(pattern: str) -> list[str]:
    """The families a subscription pattern reads whole (`sq.exec.>` reads every sq.exec family)."""
    if not pattern.endswith(".>"):
        return []
    prefix = pattern[:-1]
    families = [family for family in ACCOUNT_FAMILIES if (family + ".").startswith(prefix)]
    if families and prefix.count(".") < 2:
        raise ValueError(f"subject pattern {pattern!r} spans kinds; a partitioned core reads sq.<kind>.> or narrower")
    return families


def partition_filters(patterns: Sequence[str], index: int, count: int) -> list[str]:
    """The server-side filters of instance `index` of `count` for a core reading `patterns`.

    Each whole family becomes its owned buckets' subjects, plus its plain form (history from before
    the mapping, which the client then sorts by account). Anything else, control subjects and market
    data, is read as declared.
    """
    if count == 1:
        return list(patterns)
    owned = [b for b in range(BUCKETS) if b % count == index]
    out: list[str] = []
    for pattern in patterns:
        families = _covered(pattern)
        if not families:
            out.append(pattern)
            continue
        for family in families:
            out.extend(f"{family}.{b}.*" for b in owned)
            out.append(f"{family}.*")
    return list(dict.fromkeys(out))


__all__ = ["ACCOUNT_FAMILIES", "ACCOUNT_KINDS", "BUCKETS", "Placed", "bucket", "mapping_config", "mappings",
           "on_wire", "partition_filters", "place", "plain"]
