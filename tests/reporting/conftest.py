"""Real daily prices shipped with the project, as return series for the analytics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.reporting import read_prices_csv

PRICES = Path(__file__).resolve().parents[2] / "data" / "samples" / "pypfopt_stock_prices.csv"


@pytest.fixture(scope="session")
def goog_and_benchmark() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Dates, GOOG daily returns and the equal-weight daily return of the other assets, where all trade."""
    dates, assets, prices = read_prices_csv(PRICES)
    complete = ~np.isnan(prices).any(axis=1)
    prices = prices[complete]
    dates = [dates[i] for i in np.flatnonzero(complete)]
    returns = prices[1:] / prices[:-1] - 1
    goog = assets.index("GOOG")
    others = np.delete(returns, goog, axis=1)
    return dates[1:], returns[:, goog], others.mean(axis=1)
