"""Benchmark: return analytics over many series at once, and a 500-asset bounded minimum-variance optimisation."""

from __future__ import annotations

import math
import time

import numpy as np

from processors.portfolio.optimize import min_variance, risk_parity
from processors.reporting import metrics
from tests.bench.harness import BenchResult, result

YEARS_OF_DAYS = 10 * 252


def synthetic_returns(periods: int, series: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns of `series` assets on one market factor (periods x series), and the factor."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.01, periods)
    betas = rng.uniform(0.5, 1.5, series)
    noise = rng.normal(0.0001, 0.015, (periods, series))
    return market[:, None] * betas + noise, market


def python_metrics(r: list[float], b: list[float], ppy: int = 252) -> dict[str, float]:
    """The baseline: the same metrics as `metrics.summary` for one series, in plain Python."""
    n = len(r)
    mean = sum(r) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    wealth, peak, worst, growth = 1.0, 1.0, 0.0, 1.0
    for x in r:
        wealth *= 1 + x
        peak = max(peak, wealth)
        worst = min(worst, wealth / peak - 1)
    growth = wealth
    annual = growth ** (ppy / n) - 1
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / n) * math.sqrt(ppy)
    gains = sum(x for x in r if x > 0)
    losses = -sum(x for x in r if x < 0)
    ordered = sorted(r)

    def percentile(q: float) -> float:
        at = (n - 1) * q
        low = int(at)
        return ordered[low] + (ordered[min(low + 1, n - 1)] - ordered[low]) * (at - low)
    b_mean = sum(b) / n
    var_b = sum((y - b_mean) ** 2 for y in b) / n
    beta = sum((y - b_mean) * x for x, y in zip(r, b, strict=True)) / n / var_b
    alpha = (sum(x - beta * y for x, y in zip(r, b, strict=True)) / n + 1) ** ppy - 1
    active = [x - y for x, y in zip(r, b, strict=True)]
    a_mean = sum(active) / n
    tracking = math.sqrt(sum((x - a_mean) ** 2 for x in active) / (n - 1))
    wins = sum(1 for x in r if x > 0)
    nonzero = sum(1 for x in r if x != 0)
    return {"cumulative_return": growth - 1, "annual_return": annual, "annual_volatility": sd * math.sqrt(ppy),
            "sharpe_ratio": mean / sd * math.sqrt(ppy), "sortino_ratio": mean * ppy / downside,
            "max_drawdown": worst, "calmar_ratio": annual / -worst, "omega_ratio": gains / losses,
            "tail_ratio": abs(percentile(0.95)) / abs(percentile(0.05)), "win_rate": wins / nonzero,
            "profit_factor": gains / losses, "expectancy": sum(r) / nonzero, "beta": beta, "alpha": alpha,
            "tracking_error": tracking * math.sqrt(ppy), "information_ratio": a_mean / tracking * math.sqrt(ppy)}


def bench_series(series: int, baseline_series: int, repeats: int) -> BenchResult:
    """Series per second through `metrics.summary` on a 2-D block vs the Python loop on a few series."""
    returns, market = synthetic_returns(YEARS_OF_DAYS, series)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        block = metrics.summary(returns, market)
        best = max(best, series / (time.perf_counter() - start))
    market_list = market.tolist()
    columns = [returns[:, j].tolist() for j in range(baseline_series)]
    start = time.perf_counter()
    loop = [python_metrics(column, market_list) for column in columns]
    baseline = baseline_series / (time.perf_counter() - start)
    for name, value in loop[0].items():
        if not math.isclose(float(block[name][0]), value, rel_tol=1e-9):
            raise AssertionError(f"{name}: vectorised {block[name][0]} and loop {value} disagree")
    return result("analytics_series", best, "series/s",
                  baseline=f"plain Python loop, same metrics, {baseline_series} of the same series",
                  baseline_value=baseline, better="higher")


def bench_optimize(assets: int, bounds: tuple[float, float], repeats: int) -> BenchResult:
    """Seconds for a bounded minimum-variance optimisation beside scipy's SLSQP (or an equal-weight compute)."""
    returns, _ = synthetic_returns(2 * assets, assets, seed=3)
    cov = np.cov(returns, rowvar=False) * 252
    seconds = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        weights = min_variance(cov, bounds)
        seconds = min(seconds, time.perf_counter() - start)
    try:
        from scipy.optimize import minimize
    except ImportError:
        start = time.perf_counter()
        equal = np.full(assets, 1 / assets)
        float(equal @ cov @ equal)
        risk_parity(cov)
        return result(f"optimize_{assets}", seconds, "s",
                      baseline="scipy not installed: equal-weight and risk-parity compute, same covariance",
                      baseline_value=time.perf_counter() - start, better="lower")
    start = time.perf_counter()
    found = minimize(lambda w: (w @ cov @ w, 2 * cov @ w), np.full(assets, 1 / assets), jac=True, method="SLSQP",
                     bounds=[bounds] * assets, options={"ftol": 1e-12, "maxiter": 1000},
                     constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(assets)}])
    baseline = time.perf_counter() - start
    ours, theirs = float(weights @ cov @ weights), float(found.x @ cov @ found.x)
    if ours > theirs * (1 + 1e-9):
        raise AssertionError(f"min-variance {ours} is above SLSQP's {theirs}")
    return result(f"optimize_{assets}", seconds, "s",
                  baseline=f"scipy SLSQP, same covariance and bounds {bounds[0]},{bounds[1]}",
                  baseline_value=baseline, better="lower")


def run(series: int = 1_000, baseline_series: int = 50, assets: int = 500, repeats: int = 3) -> list[BenchResult]:
    """`analytics_series` and `optimize_500` (named after `assets`)."""
    return [bench_series(series, baseline_series, repeats),
            bench_optimize(assets, (0.0, 10 / assets), repeats)]


if __name__ == "__main__":
    for row in run():
        print(row.as_dict())
