"""The order-path cores folded one event at a time exactly as their runners' hosts fold them: the one
`processors.fold.step`, with `apply_outputs=True` (each output is evolved at once)."""

from __future__ import annotations

from functools import partial

from processors.fold import step
from processors.risk import core as risk
from processors.router import core as router
from processors.venue_sim import core as venue_sim

risk_step = partial(step, risk.decide, risk.evolve, apply_outputs=True)
router_step = partial(step, router.decide, router.evolve, apply_outputs=True)
sim_step = partial(step, venue_sim.decide, venue_sim.evolve, apply_outputs=True)

__all__ = ["risk_step", "router_step", "sim_step"]
