"""Scale-out: two risk instances partitioned by account decide every intent exactly once between them
(tests/events/test_partitions.py shows the server delivers each only its share)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from events import Bus, OrderIntent, RiskDecision, decode, intent_id_for
from processors.host import ProcessorHost
from processors.partition import InvalidPartition, Partition
from processors.risk import LimitsFile, RiskState
from processors.risk import decide as risk_decide
from processors.risk import evolve as risk_evolve
from processors.risk.core import SUBSCRIPTIONS as RISK_SUBSCRIPTIONS
from tests.conftest import eventually

ACCOUNTS = [f"ACC{i}" for i in range(12)]


def test_partition_flag_is_parsed_and_bad_values_are_named() -> None:
    assert Partition.parse("1/3") == Partition(1, 3)
    for bad in ("3/3", "1", "a/2", "-1/2", "1/0", "0/17"):
        with pytest.raises(InvalidPartition, match="K/N"):
            Partition.parse(bad)


def test_every_account_subject_belongs_to_exactly_one_partition_and_shared_subjects_to_all() -> None:
    parts = [Partition(i, 3) for i in range(3)]
    for account in ACCOUNTS:
        for subject in (f"sq.ord.intent.{account}", f"sq.exec.report.SIM_A.{account}", f"sq.ctl.killswitch.{account}"):
            assert sum(p.owns(subject) for p in parts) == 1
        assert [p.owns(f"sq.ord.intent.{account}") for p in parts] == [p.owns(f"sq.risk.decision.{account}")
                                                                        for p in parts]
    for shared in ("sq.md.trade.BINANCE.XYZ", "sq.ctl.timer.router", "sq.ctl.killswitch.all", "sq.ctl.breaker.XYZ"):
        assert all(p.owns(shared) for p in parts)


async def test_two_risk_instances_share_the_accounts_and_decide_each_intent_once(bus: Bus, tmp_path: Path) -> None:
    stop = asyncio.Event()
    hosts = [ProcessorHost(name=f"risk-{k}", bus=bus, wal_root=tmp_path / "wal", streams=("SQ_TRADING", "SQ_MD"),
                           state=RiskState(LimitsFile()), decide=risk_decide, evolve=risk_evolve,
                           subscriptions=RISK_SUBSCRIPTIONS, partition=Partition(k, 2), apply_outputs=True)
             for k in range(2)]
    tasks = [asyncio.create_task(host.run(stop)) for host in hosts]
    await eventually(lambda: all(h.caught_up.is_set() for h in hosts), message="both following")
    now = time.time_ns()
    intents = [OrderIntent(id=intent_id_for(a, "p-1"), ts=now, account=a, client_order_id="p-1", symbol="XYZ",
                           side="BUY", quantity=D(1), limit_price=D(10)) for a in ACCOUNTS]
    await bus.publish_batch(intents)

    async def decisions() -> list[RiskDecision]:
        info = await bus.js.stream_info("SQ_TRADING")
        found = [decode((await bus.js.get_msg("SQ_TRADING", s)).data or b"")
                 for s in range(1, info.state.last_seq + 1)]
        return [d for d in found if isinstance(d, RiskDecision)]

    async def all_decided() -> bool:
        return len(await decisions()) >= len(ACCOUNTS)

    await eventually(all_decided, message="every intent decided")
    decided = await decisions()
    assert sorted(d.order_id for d in decided) == sorted(i.id for i in intents)
    # Each instance decided only its own accounts' intents (duplicates would also be dropped by
    # JetStream's dedupe, since both would derive the same decision id; this shows none was made).
    mine = [set(host.state.recent) for host in hosts]
    assert mine[0] and mine[1] and not mine[0] & mine[1] and mine[0] | mine[1] == {i.id for i in intents}
    stop.set()
    await asyncio.gather(*tasks)
