"""Portfolio optimisation: expected returns and risk from prices, then equal weight, minimum variance,
maximum Sharpe or risk parity weights, long-only or within bounds.

Estimators follow PyPortfolioOpt's defaults: daily simple returns from consecutive prices;
expected return is the compounded mean historical return, `prod(1 + r) ** (252 / n) - 1` over each
asset's own returns; risk is the sample covariance (ddof=1) of daily returns times 252, each pair
over the days both assets have returns (blank prices before an asset lists are missing, not zero),
with negative eigenvalues clipped if pairwise estimates make it indefinite. `shrinkage=True` uses
Ledoit-Wolf shrinkage towards a scaled identity (sklearn's estimator, as PyPortfolioOpt calls it,
missing returns taken as 0).

Solvers are numpy only: minimum variance and maximum Sharpe are convex QPs (`_qp.solve_qp`; max
Sharpe through the usual change of variables y = k w with (mu - rf)'y = 1); risk parity solves
Spinu's convex problem `min ½ y'Sy - (1/n) sum(log y)` by Newton's method and normalises.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from processors.portfolio._qp import solve_qp

Floats = NDArray[np.float64]
Method = Literal["equal", "min-variance", "max-sharpe", "risk-parity"]
METHODS: tuple[Method, ...] = ("equal", "min-variance", "max-sharpe", "risk-parity")
TRADING_DAYS = 252
LONG_ONLY = (0.0, 1.0)


class InvalidOptimization(ValueError):
    """An optimisation cannot be run as asked; `field`, `value` and `limit` say why."""

    def __init__(self, field: str, value: object, limit: str) -> None:
        super().__init__(f"{field} {value} {limit}")
        self.field = field
        self.value = value
        self.limit = limit


class Optimized(msgspec.Struct, frozen=True, kw_only=True):
    """Weights and the estimates behind them, with the portfolio's expected return, volatility and Sharpe."""

    method: str
    assets: list[str]
    weights: list[float]
    expected_returns: list[float]
    covariance: list[list[float]]
    expected_return: float
    volatility: float
    sharpe: float
    risk_free: float
    bounds: tuple[float, float]
    shrinkage: float | None = None


def daily_returns(prices: Floats) -> Floats:
    """Simple returns between consecutive rows; NaN where either price is missing."""
    prices = np.asarray(prices, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return prices[1:] / prices[:-1] - 1.0


def mean_historical_return(returns: Floats, frequency: int = TRADING_DAYS) -> Floats:
    """Compounded mean return per asset over its own non-missing returns, annualised."""
    valid = ~np.isnan(returns)
    counts = valid.sum(axis=0)
    if (counts == 0).any():
        raise InvalidOptimization("returns", f"column {int(np.argmin(counts))}", "has no returns at all")
    growth = np.prod(np.where(valid, 1.0 + np.nan_to_num(returns), 1.0), axis=0)
    return growth ** (frequency / counts) - 1.0


def _clip_to_psd(matrix: Floats) -> Floats:
    """The matrix with negative eigenvalues set to 0 (PyPortfolioOpt's 'spectral' fix)."""
    values, vectors = np.linalg.eigh(matrix)
    if values.min() >= 0:
        return matrix
    fixed = (vectors * np.maximum(values, 0.0)) @ vectors.T
    return (fixed + fixed.T) / 2


def sample_covariance(returns: Floats, frequency: int = TRADING_DAYS) -> Floats:
    """Annualised sample covariance (ddof=1), each pair over the periods where both have returns."""
    valid = (~np.isnan(returns)).astype(np.float64)
    x = np.nan_to_num(returns)
    pairs = valid.T @ valid
    if (pairs < 2).any():
        i, j = np.argwhere(pairs < 2)[0]
        raise InvalidOptimization(f"returns[{i}, {j}]", f"{int(pairs[i, j])} common periods", "need at least 2")
    sum_xy = x.T @ x
    sum_x_over_pair = x.T @ valid  # [i, j]: sum of asset i's returns on the days asset j has one
    cov = (sum_xy - sum_x_over_pair * sum_x_over_pair.T / pairs) / (pairs - 1)
    return _clip_to_psd((cov + cov.T) / 2) * frequency


def ledoit_wolf(returns: Floats, frequency: int = TRADING_DAYS) -> tuple[Floats, float]:
    """Ledoit-Wolf shrunk covariance (towards mu * I, annualised) and the shrinkage intensity."""
    x = np.nan_to_num(returns)
    n, p = x.shape
    x = x - x.mean(axis=0)
    x2 = x * x
    emp_cov = x.T @ x / n
    trace_terms = x2.sum(axis=0) / n
    mu = trace_terms.sum() / p
    beta_sum = float((x2.T @ x2).sum())
    delta_sum = float((emp_cov * emp_cov).sum())
    beta = (beta_sum / n - delta_sum) / (n * p)
    delta = (delta_sum - 2 * mu * trace_terms.sum() + p * mu * mu) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1 - shrinkage) * emp_cov + shrinkage * mu * np.eye(p)
    return shrunk * frequency, float(shrinkage)


def check_bounds(bounds: tuple[float, float], n: int) -> None:
    """Refuse bounds that are inverted or cannot sum to 1 over `n` assets."""
    lo, hi = bounds
    if not (math.isfinite(lo) or lo == -math.inf) or not (math.isfinite(hi) or hi == math.inf) or lo >= hi:
        raise InvalidOptimization("bounds", f"{lo},{hi}", "must satisfy LO < HI")
    if lo * n > 1 + 1e-12:
        raise InvalidOptimization("bounds.lo", lo, f"times {n} assets exceeds 1; at most {1 / n:.6g}")
    if hi * n < 1 - 1e-12:
        raise InvalidOptimization("bounds.hi", hi, f"times {n} assets is below 1; at least {1 / n:.6g}")


def _box(n: int, lo: float, hi: float) -> tuple[Floats, Floats]:
    """Inequality rows G x <= h for lo <= x <= hi, leaving out infinite sides."""
    rows, limits = [], []
    if hi < math.inf:
        rows.append(np.eye(n))
        limits.append(np.full(n, hi))
    if lo > -math.inf:
        rows.append(-np.eye(n))
        limits.append(np.full(n, -lo))
    if not rows:
        return np.zeros((0, n)), np.zeros(0)
    return np.vstack(rows), np.concatenate(limits)


def min_variance(cov: Floats, bounds: tuple[float, float] = LONG_ONLY) -> Floats:
    """Weights summing to 1 within bounds that minimise w'Sw."""
    n = cov.shape[0]
    check_bounds(bounds, n)
    G, h = _box(n, *bounds)
    return solve_qp(cov, np.zeros(n), np.ones((1, n)), np.ones(1), G, h)


def max_sharpe(mu: Floats, cov: Floats, risk_free: float = 0.0, bounds: tuple[float, float] = LONG_ONLY) -> Floats:
    """Weights summing to 1 within bounds that maximise (mu'w - rf) / sqrt(w'Sw)."""
    n = cov.shape[0]
    check_bounds(bounds, n)
    excess = mu - risk_free
    if excess.max() <= 0:
        raise InvalidOptimization("expected_returns", f"max {excess.max() + risk_free:.6g}",
                                  f"must exceed the risk-free rate {risk_free} for some asset")
    lo, hi = bounds
    # Variables (y, k) with y = k w, k > 0: min y'Sy s.t. excess'y = 1, sum(y) = k, lo k <= y <= hi k.
    Q = np.zeros((n + 1, n + 1))
    Q[:n, :n] = cov
    A = np.zeros((2, n + 1))
    A[0, :n] = excess
    A[1, :n], A[1, n] = 1.0, -1.0
    rows = [np.hstack([np.zeros(n), [-1.0]])[None, :]]
    if hi < math.inf:
        rows.append(np.hstack([np.eye(n), np.full((n, 1), -hi)]))
    if lo > -math.inf:
        rows.append(np.hstack([-np.eye(n), np.full((n, 1), lo)]))
    G = np.vstack(rows)
    solution = solve_qp(Q, np.zeros(n + 1), A, np.array([1.0, 0.0]), G, np.zeros(G.shape[0]))
    return solution[:n] / solution[n]


def risk_parity(cov: Floats, *, tolerance: float = 1e-14, max_iterations: int = 100) -> Floats:
    """Long-only weights whose risk contributions w_i (Sw)_i are all equal."""
    n = cov.shape[0]
    budget = np.full(n, 1.0 / n)
    y = budget / np.sqrt(np.diag(cov))
    for _ in range(max_iterations):
        gradient = cov @ y - budget / y
        hessian = cov + np.diag(budget / (y * y))
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)
        if decrement < tolerance:
            # Converged: one last full step costs nothing and, near the optimum, doubles the digits.
            if (y - step > 0).all():
                y = y - step
            break
        # Damped Newton: halve until y stays positive (the log barrier's domain).
        t = 1.0
        while (y - t * step <= 0).any():
            t /= 2
        y = y - t * step
    else:
        raise InvalidOptimization("risk_parity", f"decrement {decrement:.3g}",
                                  f"above {tolerance:g} after {max_iterations} Newton steps")
    return y / y.sum()


def optimize(method: Method, assets: list[str], prices: Floats, *, risk_free: float = 0.0,
             bounds: tuple[float, float] = LONG_ONLY, shrinkage: bool = False) -> Optimized:
    """Estimate expected returns and covariance from prices, then weights by `method`."""
    if method not in METHODS:
        raise InvalidOptimization("method", method, f"is not one of {', '.join(METHODS)}")
    prices = np.asarray(prices, dtype=np.float64)
    if prices.ndim != 2 or prices.shape[1] != len(assets) or prices.shape[0] < 3:
        raise InvalidOptimization("prices", f"shape {prices.shape}", f"must be (>= 3 dates, {len(assets)} assets)")
    returns = daily_returns(prices)
    returns = returns[~np.isnan(returns).all(axis=1)]
    mu = mean_historical_return(returns)
    intensity: float | None = None
    if shrinkage:
        cov, intensity = ledoit_wolf(returns)
    else:
        cov = sample_covariance(returns)
    return optimize_estimates(method, assets, mu, cov, risk_free=risk_free, bounds=bounds, shrinkage=intensity)


def optimize_estimates(method: Method, assets: list[str], mu: Floats, cov: Floats, *, risk_free: float = 0.0,
                       bounds: tuple[float, float] = LONG_ONLY, shrinkage: float | None = None) -> Optimized:
    """Weights by `method` from given annual expected returns and covariance."""
    n = len(assets)
    check_bounds(bounds, n)
    if method == "equal":
        weights = np.full(n, 1.0 / n)
    elif method == "min-variance":
        weights = min_variance(cov, bounds)
    elif method == "max-sharpe":
        weights = max_sharpe(mu, cov, risk_free, bounds)
    elif method == "risk-parity":
        weights = risk_parity(cov)
        _check_within(weights, assets, bounds)
    else:
        raise InvalidOptimization("method", method, f"is not one of {', '.join(METHODS)}")
    expected = float(weights @ mu)
    volatility = math.sqrt(max(float(weights @ cov @ weights), 0.0))
    return Optimized(method=method, assets=list(assets), weights=weights.tolist(), expected_returns=mu.tolist(),
                     covariance=cov.tolist(), expected_return=expected, volatility=volatility,
                     sharpe=(expected - risk_free) / volatility if volatility else math.nan,
                     risk_free=risk_free, bounds=bounds, shrinkage=shrinkage)


def _check_within(weights: Floats, assets: list[str], bounds: tuple[float, float]) -> None:
    """Risk parity has no bounds of its own: refuse a result outside the ones asked for."""
    lo, hi = bounds
    for asset, weight in zip(assets, weights, strict=True):
        if not lo - 1e-12 <= weight <= hi + 1e-12:
            raise InvalidOptimization(f"weights.{asset}", f"{weight:.6g}",
                                      f"from risk parity is outside bounds {lo},{hi}")
