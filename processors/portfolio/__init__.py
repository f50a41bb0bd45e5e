"""The portfolio manager: optimisation, rebalancing, reconciliation, risk analytics and attribution.

The functions named like their modules (`optimize.optimize`, `rebalance.rebalance`,
`reconcile.reconcile`) are not re-exported here: that would hide the modules behind them.
"""

from processors.portfolio.attribution import Attribution, AttributionRow, MissingMark
from processors.portfolio.core import PortfolioConfig, PortfolioState, decide, evolve
from processors.portfolio.optimize import METHODS, InvalidOptimization, Optimized, optimize_estimates
from processors.portfolio.rebalance import RebalanceConfig, RebalanceRefused, plan_trades
from processors.portfolio.risk import RiskReport, risk_report

__all__ = [
    "METHODS", "Attribution", "AttributionRow", "InvalidOptimization", "MissingMark", "Optimized", "PortfolioConfig",
    "PortfolioState", "RebalanceConfig", "RebalanceRefused", "RiskReport", "decide", "evolve", "optimize_estimates",
    "plan_trades", "risk_report",
]
