"""Running the order path's cores offline over a recorded WAL, exactly as ProcessorHost runs them live.

A host decides on every event it reads from its streams (market data, intents, other processors'
outputs and its own outputs coming back), then evolves by that event, then — with
`apply_outputs=True`, as every order-path runner sets — evolves by each output at once. Offline,
the recorded log in `store.follow.history` order (broker time, stream, sequence), filtered by the
runner's subject filter, is the same input; the outputs are what the core decides on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events._base import Event
from events.codec import AnyEvent
from events.subjects import STREAM_MD, STREAM_TRADING
from processors.fold import step
from processors.risk import LimitsFile, RiskState
from processors.risk import decide as risk_decide
from processors.risk import evolve as risk_evolve
from processors.risk.runner import _wanted as risk_wanted
from processors.router import RouterConfig, RouterState, VenueSpec
from processors.router import decide as router_decide
from processors.router import evolve as router_evolve
from processors.router.runner import wanted as router_wanted
from processors.venue_sim.config import SimConfig
from processors.venue_sim.core import decide as sim_decide
from processors.venue_sim.core import evolve as sim_evolve
from processors.venue_sim.runner import wanted as sim_wanted
from processors.venue_sim.state import SimState
from store.follow import Envelope, history

STREAMS = (STREAM_TRADING.name, STREAM_MD.name)


@dataclass
class Core:
    """One pure core with the subject filter its runner applies."""

    name: str
    state: Any
    decide: Callable[[Any, AnyEvent], list[Event]]
    evolve: Callable[[Any, AnyEvent], Any]
    wanted: Callable[[str], bool]
    outputs: list[Event] = field(default_factory=list)
    inputs: int = 0

    def feed(self, event: AnyEvent) -> list[Event]:
        """One event through the core as the host folds it (processors.fold.step, apply_outputs=True)."""
        self.state, outputs = step(self.decide, self.evolve, self.state, event, apply_outputs=True)
        self.inputs += 1
        self.outputs.extend(outputs)
        return outputs


def order_path_cores(venues: Sequence[VenueSpec], limits: LimitsFile, *, slice_time_in_force: str = "GTC",
                     router_config: RouterConfig | None = None, sim_config: SimConfig | None = None) -> dict[str, Core]:
    """Fresh risk, router and venue-sim cores configured as a stack's hosts are (or with the configs given)."""
    router_config = router_config or RouterConfig(venues=list(venues),
                                                  slice_time_in_force=slice_time_in_force)  # type: ignore[arg-type]
    sim_config = sim_config or SimConfig(venues=list(venues))
    return {
        "risk": Core("risk", RiskState(limits), risk_decide, risk_evolve, risk_wanted),
        "router": Core("router", RouterState(router_config), router_decide, router_evolve, router_wanted),
        "venue-sim": Core("venue-sim", SimState(sim_config), sim_decide, sim_evolve, sim_wanted),
    }


def recorded(wal_root: Path) -> list[Envelope]:
    """Everything the recorder wrote for the order path's streams, in the order a rebuild reads it."""
    return list(history(wal_root, STREAMS, {}, source="offline-replay"))


def run_offline(cores: dict[str, Core], log: Sequence[Envelope]) -> dict[str, Core]:
    """Feed every core the recorded log (its wanted subjects only), in log order; outputs collect on each core."""
    for envelope in log:
        for core in cores.values():
            if core.wanted(envelope.subject):
                core.feed(envelope.event)
    return cores
