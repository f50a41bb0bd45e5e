"""Simulated venues: child orders filled against the reconstructed book and trades, with fees and latency."""

from processors.venue_sim._book import MarketBook
from processors.venue_sim.config import SimConfig, load_sim_config, parse_sim_config
from processors.venue_sim.core import decide, evolve
from processors.venue_sim.state import SimState

__all__ = ["MarketBook", "SimConfig", "SimState", "decide", "evolve", "load_sim_config", "parse_sim_config"]
