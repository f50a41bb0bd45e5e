"""Each processor receives exactly the subjects its core declares: the broker filters, not the process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from events import Bus
from events.subjects import subject_matches
from processors.aggregator.core import SUBSCRIPTIONS as AGGREGATOR
from processors.host import ProcessorHost
from processors.portfolio.core import SUBSCRIPTIONS as PORTFOLIO
from processors.reporting.core import SUBSCRIPTIONS as REPORTING
from processors.risk.core import SUBSCRIPTIONS as RISK
from processors.router.core import SUBSCRIPTIONS as ROUTER
from processors.venue_sim.core import SUBSCRIPTIONS as VENUE_SIM
from tests.conftest import eventually
from tests.processors._recorded_run import CORES, recorded_run

DECLARED = {"risk": RISK, "router": ROUTER, "venue-sim": VENUE_SIM, "portfolio": PORTFOLIO, "aggregator": AGGREGATOR,
            "reporting": REPORTING}
# The streams each processor's runner reads (the others read both).
STREAMS = {"aggregator": ("SQ_MD",), "reporting": ("SQ_TRADING",)}


def _kind(subject: str) -> str:
    return ".".join(subject.split(".", 3)[:3])


@pytest.mark.parametrize("spec", CORES, ids=[spec.name for spec in CORES])
async def test_a_processor_receives_only_and_all_the_subject_kinds_its_core_declares(
        bus: Bus, tmp_path: Path, spec: Any) -> None:
    patterns = DECLARED[spec.name]
    streams = STREAMS.get(spec.name, ("SQ_TRADING", "SQ_MD"))
    host: ProcessorHost[Any] = ProcessorHost(name=spec.name, bus=bus, wal_root=tmp_path / "wal", streams=streams,
                                             state=spec.fresh(), decide=spec.decide, evolve=spec.evolve,
                                             apply_outputs=spec.apply_outputs, subscriptions=patterns)
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        await eventually(host.caught_up.is_set, message="host following")
        log = recorded_run()
        await bus.publish_batch([envelope.event for envelope in log])
        published = {_kind(envelope.subject) for envelope in log}
        declared = {kind for kind in published if any(subject_matches(p, kind + ".x.y") for p in patterns)}
        assert declared, f"the mixed run covers some of what {spec.name} reads"
        assert published - declared, f"the mixed run has subjects {spec.name} does not read"
        assert host._feed is not None
        await eventually(lambda: host._feed.received_kinds >= declared, message="every declared kind delivered")
        # Outputs of the host itself land on declared kinds too; nothing undeclared ever arrives.
        assert host._feed.received_kinds == declared, (spec.name, host._feed.received_kinds ^ declared)
    finally:
        stop.set()
        await task
