"""Simulated venues: child orders filled against the reconstructed book and trades, with fees and latency."""

from processors.router.sim._book import MarketBook
from processors.router.sim.config import SimConfig, load_sim_config, parse_sim_config
from processors.router.sim.core import decide, evolve, step
from processors.router.sim.state import SimState

__all__ = ["MarketBook", "SimConfig", "SimState", "decide", "evolve", "load_sim_config", "parse_sim_config", "step"]
